"""Engines that feed rows unevenly or take tokens back give the distributions of a full recompute,
on models whose attention sees only a window of recent tokens too (``attention_masks``).

The union-vocabulary decoder feeds each row its own number of tokens per step (masked gaps in
the cache); the byte-level decoder also feeds tokens it crops off again.  A 4-token window makes
every wrongly counted gap change the next distribution.
"""

from __future__ import annotations

import random

import pytest
import torch

from moco_core.backends.hf import HFBackend, HFModel
from moco_core.engines.attention_masks import windowed_masks
from moco_core.engines.byte_level import ByteJointDecoder
from moco_core.engines.decoding import JointDecoder, _ModelStream
from moco_core.engines.vocab_alignment import _advance
from moco_core.testing import build_tiny_model_of, other_architectures

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2 + 3?", "Model 1 is good at math today.", "Why?"]
ARCHITECTURES = ["llama", "mistral", "qwen2", "gemma2"]


@pytest.fixture(scope="module")
def models(tiny_pool_paths, tmp_path_factory) -> dict[str, HFModel]:
    backend, root = HFBackend(), tmp_path_factory.mktemp("architectures")
    loaded = {"llama": backend.load(str(tiny_pool_paths[0]), "cpu", "float32")}
    for name in ARCHITECTURES[1:]:
        folder = build_tiny_model_of(root / name, other_architectures(window=4)[name], tiny_pool_paths[0])
        loaded[name] = backend.load(str(folder), "cpu", "float32")
    return loaded


def recomputed(model: HFModel, ids: list[int]) -> torch.Tensor:
    """The logits after every token of ``ids``, read from scratch."""
    with torch.inference_mode():
        return model.model(input_ids=torch.tensor([ids])).logits[0]


def prompt_ids(model: HFModel) -> list[list[int]]:
    rendered = JointDecoder([model]).render(PROMPTS, [None])[0]
    return model.tokenizer(rendered, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_rows_fed_unevenly_read_as_a_full_recompute(models, architecture):
    model = models[architecture]
    rendered = JointDecoder([model]).render(PROMPTS, [None])[0]
    stream = _ModelStream(model, rendered, model.tokenizer.pad_token_id, uneven=True)
    rows, draw = prompt_ids(model), random.Random(0)
    prompt_lengths = [len(ids) for ids in rows]
    with torch.inference_mode():
        for _ in range(8):
            feeds = [[draw.randrange(5, 200) for _ in range(draw.choice([0, 1, 3]))] for _ in rows]
            _advance(stream, feeds, model.tokenizer.pad_token_id)
            for row, (ids, fed) in enumerate(zip(rows, feeds, strict=True)):
                ids += fed
                torch.testing.assert_close(stream.logits[row], recomputed(model, ids)[-1], atol=1e-4, rtol=1e-4)
    assert min(len(ids) - n for ids, n in zip(rows, prompt_lengths, strict=True)) > 4, "reads past the window"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_tokens_fed_then_cropped_off_read_as_a_full_recompute(models, architecture):
    model = models[architecture]
    decoder = ByteJointDecoder([model])
    byte_model = decoder.streams(decoder.render(PROMPTS, [None]))[0]
    rows, draw = prompt_ids(model), random.Random(1)
    with torch.inference_mode():
        for _ in range(8):
            commit = [[draw.randrange(5, 200) for _ in range(draw.choice([0, 1, 2]))] for _ in rows]
            fresh = [[draw.randrange(5, 200) for _ in range(draw.choice([0, 2, 3]))] for _ in rows]
            after, at_fresh = byte_model._forward(commit, fresh)
            for row, (ids, kept, tried) in enumerate(zip(rows, commit, fresh, strict=True)):
                ids += kept
                full = recomputed(model, ids + tried)
                torch.testing.assert_close(after[row], full[len(ids) - 1], atol=1e-4, rtol=1e-4)
                for j in range(len(tried)):
                    torch.testing.assert_close(at_fresh[row, j], full[len(ids) + j], atol=1e-4, rtol=1e-4)


def test_a_window_counts_live_tokens_not_columns():
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 1, 0, 1]])  # a left pad, then gaps between live tokens
    [[visible]] = windowed_masks(mask, queries=2, windows=3, dtype=None).tolist()
    assert visible[0] == [False, False, True, False, False, True, True, True, False]  # a dead query: itself
    assert visible[1] == [False, False, False, False, False, True, True, False, True]  # its last 3 live tokens
    full = windowed_masks(mask, queries=1, windows={"full_attention": None, "sliding_attention": 2}, dtype=None)
    assert full["full_attention"][0, 0, 0].tolist() == [bool(x) for x in mask[0].tolist()]
    assert full["sliding_attention"][0, 0, 0].nonzero().flatten().tolist() == [6, 8]
