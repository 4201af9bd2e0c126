"""The text exchange engine keeps every model's cache equal to a full re-read of the shared text."""

from __future__ import annotations

import pytest

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines.full_recompute import ReferenceExchange
from moco_core.engines.text_exchange import Choice, ExchangeView, TextExchangeDecoder
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.nudging import NudgingPolicy

pytestmark = pytest.mark.slow

PROMPTS = [
    "What is 2 + 3?",
    "Answer with the letter of the correct option. Question: what is the answer? A) 5 B) 6 C) 7",
    "Model 1 is good at math.",
    "history question",
    "The answer is",
]
GREEDY = GenerationSettings(max_new_tokens=24, temperature=0.0, top_p=1.0, seed=0)


class KeptStreams(TextExchangeDecoder):
    """The engine, keeping its streams so the test can inspect the caches afterwards."""

    kept: list = []  # noqa: RUF012

    def streams(self, prompts, reserve=0):
        made = super().streams(prompts, reserve)
        self.kept.append(made)
        return made


def alternate(patch: int):
    """Switch writers every ``patch`` generated tokens, starting with model 0."""

    def policy(view: ExchangeView) -> dict[int, Choice]:
        choices = {}
        for model in (0, 1):
            rows = [p for p in view.active if (view.generated(p) // patch) % 2 == model]
            for p, lp in zip(rows, view.log_probs(model, rows), strict=True):
                choices[p] = Choice(model, lp)
        return choices

    return policy


@pytest.fixture(scope="module")
def two_tokenizers(tiny_pool_paths, other_tokenizer_model) -> list[HFModel]:
    backend = HFBackend()
    models = [
        backend.load(str(tiny_pool_paths[0]), "cpu", "float32"),
        backend.load(str(other_tokenizer_model), "cpu", "float32"),
    ]
    assert models[0].tokenizer.get_vocab() != models[1].tokenizer.get_vocab()
    return models


def decode(decoder, factory, settings=GREEDY):
    rendered = decoder.render(PROMPTS, [None, None])
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in PROMPTS]
    return decoder.decode(rendered, factory, settings, seeds)


@pytest.mark.parametrize("patch", [1, 3])
def test_switching_matches_full_recompute(two_tokenizers, patch):
    engine = KeptStreams(two_tokenizers, batch_size=4)
    KeptStreams.kept = []
    fast = decode(engine, lambda: alternate(patch))
    slow = decode(ReferenceExchange(two_tokenizers, batch_size=1), lambda: alternate(patch))
    assert [r.text for r in fast] == [r.text for r in slow]
    assert [[(s.model, s.text) for s in r.spans] for r in fast] == [[(s.model, s.text) for s in r.spans] for r in slow]
    assert sum(len(r.spans) >= 3 for r in fast) >= 3, "too few switches to test anything"
    for streams in KeptStreams.kept:  # each cache holds exactly the model's own encoding of the text, once
        for model, stream in zip(two_tokenizers, streams, strict=True):  # (then any raw ids of a part character)
            for row, text in enumerate(stream.seen):
                encoded = model.tokenizer(text, add_special_tokens=False)["input_ids"]
                assert stream.ids[row] == encoded + stream.seen_extras[row]


@pytest.mark.parametrize("compact_always", [False, True])
def test_nudging_matches_full_recompute_and_hands_over_under_gamma(two_tokenizers, monkeypatch, compact_always):
    if compact_always:  # dead cache columns are dropped before every forward
        monkeypatch.setattr("moco_core.engines.text_exchange.COMPACT_SLACK", -(10**6))
    gamma = 0.1
    logs: list[NudgingPolicy] = []

    def factory():
        logs.append(NudgingPolicy(0, 1, gamma))
        return logs[-1]

    fast = decode(TextExchangeDecoder(two_tokenizers, batch_size=4), factory)
    fast_logs = {i: e for p in logs for i, e in p.log.items()}
    logs.clear()
    slow = decode(ReferenceExchange(two_tokenizers, batch_size=1), factory)
    assert [r.text for r in fast] == [r.text for r in slow]
    events = [e for log in fast_logs.values() for e in log]
    assert {e["to"] for e in events} == {"base", "nudging"}
    assert all((e["base_top1"] >= gamma) == (e["to"] == "base") for e in events)
    assert all(r.spans[0].model == 1 for r in fast if r.spans)  # the first token is the nudging model's
