"""Sampling (temperature > 0): a row's text and spans never depend on its batch neighbours.

Each token-level policy decodes the same prompts in one batch, one at a time, and next to other
prompts in another order; every row must come out the same.
"""

from __future__ import annotations

import pytest
import torch

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines.decoding import JointDecoder
from moco_core.engines.text_exchange import TextExchangeDecoder
from moco_core.testing import build_sentencepiece_model
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.co_llm import DeferHook
from moco_methods_api.mentor_collab import MentorPolicy
from moco_methods_api.nudging import NudgingPolicy
from moco_methods_api.switch_generation import SwitchPolicy

PROMPTS = ["What is 2 + 3?", "Café 日本 😀", "Model 1 is good at math.", "history\n\nquestion", "The answer is", "Why?"]
NEIGHBOURS = ["zzz another prompt", "a b c d e f g h i j k l m n o p"]
SAMPLED = GenerationSettings(max_new_tokens=14, temperature=1.0, top_p=0.9, seed=5)


class Context:
    settings = SAMPLED


def random_writer(view, due):
    """The next patch's writer drawn from the row's own stream."""
    return [int(view.uniform(p) < 0.5) for p in due]


POLICIES = {
    "nudging": lambda: NudgingPolicy(1, 0, 0.1),  # the second model is the base
    "switch_generation": lambda: SwitchPolicy(2, lambda due, view: random_writer(view, due)),
    "mentor_collab": lambda: MentorPolicy(Context(), "g", [], 0.6, 3, classifier=lambda h: h[:, :1]),
}


@pytest.fixture(scope="module")
def pair(tiny_pool_paths, tmp_path_factory) -> list[HFModel]:
    """The tiny pool's byte-level model and a SentencePiece model (another tokenizer)."""
    sentencepiece = build_sentencepiece_model(tmp_path_factory.mktemp("sampling") / "sp")
    return [HFBackend().load(str(p), "cpu", "float32") for p in (tiny_pool_paths[0], sentencepiece)]


@pytest.fixture(scope="module")
def shared_pair(tiny_pool_paths) -> list[HFModel]:
    return [HFBackend().load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]


def exchange(models, name, prompts, batch_size):
    decoder = TextExchangeDecoder(models, batch_size=batch_size, hidden_states=[0] if name == "mentor_collab" else ())
    rendered = decoder.render(prompts, [None, None])
    seeds = [row_seed(SAMPLED.seed, GenerationRequest(p)) for p in prompts]
    results = decoder.decode(rendered, POLICIES[name], SAMPLED, seeds)
    return {p: (r.text, [(s.model, s.text, s.tokens) for s in r.spans]) for p, r in zip(prompts, results, strict=True)}


def independent(run) -> dict:
    together = run(PROMPTS, 6)
    for prompt in PROMPTS:
        assert run([prompt], 1)[prompt] == together[prompt], prompt
    shuffled = run(NEIGHBOURS + PROMPTS[::-2], 3)
    for prompt in PROMPTS[::-2]:
        assert shuffled[prompt] == together[prompt], prompt
    return together


@pytest.mark.parametrize(
    ("models", "name"),
    [("pair", "nudging"), ("pair", "switch_generation"), *(("shared_pair", name) for name in POLICIES)],
)
def test_a_rows_sampled_text_does_not_depend_on_its_neighbours(request, models, name):
    loaded = request.getfixturevalue(models)
    together = independent(lambda prompts, size: exchange(loaded, name, prompts, size))
    assert sum(len({m for m, _, _ in spans}) == 2 for _, spans in together.values()) >= 2, "too few handovers"


def test_co_llm_sampled_text_and_spans_do_not_depend_on_neighbours(shared_pair):
    torch.manual_seed(0)
    w, b = torch.randn(64) * 0.5, torch.tensor([0.0])

    def run(prompts, size):
        decoder = JointDecoder(shared_pair, batch_size=size)
        rendered = decoder.render(prompts, [None, None])
        seeds = [row_seed(SAMPLED.seed, GenerationRequest(p)) for p in prompts]
        hook = DeferHook(w, b, 0.5, "none", "defer")
        ids = decoder.decode_ids(rendered, lambda lp: lp[0], SAMPLED, seeds, step_hook=hook, hidden_states=[0])
        return {
            p: (decoder.text(row), row, hook.deferred.get(i, []))
            for i, (p, row) in enumerate(zip(prompts, ids, strict=True))
        }

    together = independent(run)
    assert any(deferred for _, _, deferred in together.values()), "nothing deferred"
