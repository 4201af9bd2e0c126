"""The joint decoder against plain ``generate``: padding, KV cache reuse and per-row seeding."""

from __future__ import annotations

import functools

import pytest
import torch

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines.decoding import DecodeStep, JointDecoder
from moco_core.testing import build_tiny_model_of, other_architectures
from moco_core.types import GenerationRequest, GenerationSettings

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is 2 + 3?",
    "Answer with the letter of the correct option. Question: what is the answer? A) 5 B) 6 C) 7",
    "Model 1 is good at math.",
]
GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=0)
LONG = GenerationSettings(max_new_tokens=24, temperature=0.0, top_p=1.0, seed=0)
SAMPLED = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=3)


def only(log_probs: list[torch.Tensor]) -> torch.Tensor:
    return log_probs[0]


@pytest.fixture(scope="module")
def tiny(tiny_pool_paths) -> HFModel:
    return HFBackend().load(str(tiny_pool_paths[0]), "cpu", "float32")


def seeds(settings: GenerationSettings, prompts: list[str]) -> list[int]:
    return [row_seed(settings.seed, GenerationRequest(p)) for p in prompts]


def test_greedy_single_model_matches_generate(tiny: HFModel) -> None:
    lengths = tiny.tokenizer(JointDecoder([tiny]).render(PROMPTS, [None])[0], add_special_tokens=False)["input_ids"]
    assert len({len(ids) for ids in lengths}) == len(PROMPTS)  # every row padded differently
    joint, expected = joint_and_generate(tiny, GREEDY)
    assert joint == expected
    assert any(expected)


@pytest.mark.parametrize("architecture", sorted(other_architectures()))
def test_greedy_decoding_matches_generate_beyond_llama(tmp_path, tiny_pool_paths, architecture) -> None:
    """Sliding windows, absolute positions and ALiBi under left padding, over 24 tokens (past the
    4-token windows)."""
    folder = build_tiny_model_of(tmp_path / architecture, other_architectures()[architecture], tiny_pool_paths[0])
    joint, expected = joint_and_generate(HFBackend().load(str(folder), "cpu", "float32"), LONG)
    assert joint == expected
    assert any(expected)


def joint_and_generate(tiny: HFModel, settings: GenerationSettings) -> tuple[list[str], list[str]]:
    """The joint decoder's texts of ``PROMPTS`` and those of one batched, left-padded ``generate``."""
    decoder = JointDecoder([tiny], batch_size=8)
    texts = decoder.render(PROMPTS, [None])[0]
    joint = decoder.decode([texts], only, settings, seeds(settings, PROMPTS))

    tokenizer = tiny.tokenizer
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.inference_mode():
        output = tiny.model.generate(
            **encoded,
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    new_tokens = output[:, encoded["input_ids"].shape[1] :].tolist()
    expected = []
    for tokens in new_tokens:
        end = tokens.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in tokens else len(tokens)
        expected.append(tokenizer.decode(tokens[:end], skip_special_tokens=True).strip())
    return joint, expected


def test_sampling_does_not_depend_on_batch(tiny: HFModel) -> None:
    decoder = JointDecoder([tiny], batch_size=8)
    texts = decoder.render(PROMPTS, [None])[0]
    batched = decoder.decode([texts], only, SAMPLED, seeds(SAMPLED, PROMPTS))
    alone = [decoder.decode([[t]], only, SAMPLED, seeds(SAMPLED, [p]))[0] for t, p in zip(texts, PROMPTS, strict=True)]
    assert batched == alone
    greedy = decoder.decode([texts], only, GREEDY, seeds(GREEDY, PROMPTS))
    assert batched != greedy


def test_prefix_is_encoded_once_per_model(tiny_pool_paths) -> None:
    backend = HFBackend()
    models = [backend.load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]
    widths: list[list[tuple[int, int]]] = [[], []]
    for model, seen in zip(models, widths, strict=True):
        original = model.model.forward

        @functools.wraps(original)
        def counting(*args, _original=original, _seen=seen, **kwargs):
            _seen.append(tuple(kwargs["input_ids"].shape))
            return _original(*args, **kwargs)

        model.model.forward = counting
    steps: list[DecodeStep] = []

    def record(step: DecodeStep) -> None:
        steps.append(step)

    decoder = JointDecoder(models, batch_size=8)
    rendered = decoder.render(PROMPTS, ["You are a helpful assistant.", None])
    settings = GenerationSettings(max_new_tokens=6, temperature=0.0, top_p=1.0)
    decoder.decode(rendered, lambda lps: (lps[0] + lps[1]).log_softmax(-1), settings, [0, 1, 2], step_hook=record)

    prefill_widths = {seen[0][1] for seen in widths}
    assert len(prefill_widths) == 2, "different system prompts give different padded widths"
    for seen in widths:
        assert seen[0][0] == len(PROMPTS)
        assert seen[1:] == [(len(PROMPTS), 1)] * (len(seen) - 1)
        assert len(seen) == len(steps)
    assert [s.index for s in steps] == list(range(len(steps)))
    assert sorted(steps[0].rows) == [0, 1, 2]


def test_step_hook_can_replace_the_distribution(tiny_pool_paths) -> None:
    backend = HFBackend()
    models = [backend.load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]
    decoder = JointDecoder(models, batch_size=2)
    rendered = decoder.render(PROMPTS, [None, None])
    mixed = decoder.decode(rendered, lambda lps: lps[0], GREEDY, [0, 1, 2], step_hook=lambda step: step.log_probs[1])
    second = JointDecoder(models[1:]).decode(rendered[1:], only, GREEDY, [0, 1, 2])
    assert mixed == second
