"""The text exchange engine's fast paths give the texts its plain paths give.

The row cache (each row's tokens in its own run of cache columns, fed as slots), the padded
cache it falls back to, eager attention's additive mask, runs wider than one token, and the
encodings shared by models with one tokenizer must all leave every output unchanged.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines import row_cache, text_exchange
from moco_core.engines.text_exchange import Choice, ExchangeView, TextExchangeDecoder
from moco_core.engines.tokenizer_ops import token_decoder, tokenizer_fingerprint
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.nudging import NudgingPolicy

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2 + 3?", "Model 1 is good at math.", "history question", "The answer is", "Why?"]
GREEDY = GenerationSettings(max_new_tokens=20, temperature=0.0, top_p=1.0, seed=0)
SAMPLED = GenerationSettings(max_new_tokens=20, temperature=1.0, top_p=0.9, seed=3)


@pytest.fixture(scope="module")
def shared_pair(tiny_pool_paths) -> list[HFModel]:
    backend = HFBackend()
    return [backend.load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]


@pytest.fixture(scope="module")
def mixed_pair(tiny_pool_paths, other_tokenizer_model) -> list[HFModel]:
    backend = HFBackend()
    return [
        backend.load(str(tiny_pool_paths[0]), "cpu", "float32"),
        backend.load(str(other_tokenizer_model), "cpu", "float32"),
    ]


def nudging_factory():
    return NudgingPolicy(0, 1, 0.05)


def alternating_factory():
    def policy(view: ExchangeView) -> dict[int, Choice]:
        choices = {}
        for model in (0, 1):
            rows = [p for p in view.active if (view.generated(p) // 2) % 2 == model]
            for p, lp in zip(rows, view.log_probs(model, rows), strict=True):
                choices[p] = Choice(model, lp)
        return choices

    return policy


def run(models, factory, settings=GREEDY, share=True, batch_size=4):
    decoder = TextExchangeDecoder(models, batch_size=batch_size)
    decoder.share_encodings = share
    rendered = decoder.render(PROMPTS, [None, None])
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in PROMPTS]
    return [
        (r.text, [(s.model, s.text, s.tokens) for s in r.spans])
        for r in decoder.decode(rendered, factory, settings, seeds)
    ]


@pytest.mark.parametrize("pair", ["shared_pair", "mixed_pair"])
@pytest.mark.parametrize("factory", [nudging_factory, alternating_factory])
@pytest.mark.parametrize("settings", [GREEDY, SAMPLED])
def test_row_cache_and_slot_widths_match_the_padded_cache(request, monkeypatch, pair, factory, settings):
    models = request.getfixturevalue(pair)
    fast = run(models, factory, settings)  # one token per slot
    assert sum(len(spans) >= 2 for _, spans in fast) >= 2, "too few handovers to test anything"
    # one slot per row (as wide as its block); a row's block over several narrow runs; the default
    for slots, slot_cost in ((1, 10**6), (1, 0), (3, 8)):
        monkeypatch.setattr(row_cache, "SLOTS", slots)
        monkeypatch.setattr(row_cache, "SLOT_COST", slot_cost)
        assert run(models, factory, settings) == fast
    monkeypatch.setattr(row_cache.RowCache, "over", classmethod(lambda cls, *args: None))
    assert run(models, factory, settings) == fast
    monkeypatch.setattr(text_exchange, "COMPACT_SLACK", -(10**6))  # the padded cache compacts before every forward
    assert run(models, factory, settings) == fast


def test_eager_attention_uses_an_additive_mask_and_matches_sdpa(tiny_pool_paths):
    backend = HFBackend()
    models = [backend.load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]
    decoder = TextExchangeDecoder(models, batch_size=4)
    streams = decoder.streams(decoder.render(PROMPTS[:2], [None, None]))
    assert streams[0].row_cache is not None and streams[0].row_cache.additive is None  # sdpa: a boolean mask
    sdpa = run(models, nudging_factory)
    for model in models:
        model.model.set_attn_implementation("eager")
    decoder = TextExchangeDecoder(models, batch_size=4)
    streams = decoder.streams(decoder.render(PROMPTS[:2], [None, None]))
    assert streams[0].row_cache is not None and streams[0].row_cache.additive is not None
    assert run(models, nudging_factory) == sdpa


def test_models_with_one_tokenizer_share_encodings_and_outputs_stay_the_same(shared_pair, monkeypatch):
    encoded: list[int] = []
    original = text_exchange._TextStream._encode

    def counting(self, texts, offsets):
        encoded.append(len(texts))
        return original(self, texts, offsets)

    monkeypatch.setattr(text_exchange._TextStream, "_encode", counting)
    shared = run(shared_pair, nudging_factory)
    shared_count, encoded[:] = sum(encoded), []
    alone = run(shared_pair, nudging_factory, share=False)
    assert shared == alone
    assert shared_count < sum(encoded)


def test_tokenizer_fingerprint_tells_copies_from_other_tokenizers(shared_pair, mixed_pair):
    first, second = shared_pair[0].tokenizer, shared_pair[1].tokenizer
    assert first is not second and tokenizer_fingerprint(first) == tokenizer_fingerprint(second)
    assert tokenizer_fingerprint(mixed_pair[1].tokenizer) != tokenizer_fingerprint(first)


def test_token_decoder_decodes_like_the_tokenizer(shared_pair, mixed_pair):
    for tokenizer in (shared_pair[0].tokenizer, mixed_pair[1].tokenizer):
        ids = tokenizer("Hello world, the answer is 42 é", add_special_tokens=False)["input_ids"]
        samples = [ids, ids[:-1], [tokenizer.eos_token_id, *ids[:3]], list(range(min(60, len(tokenizer))))]
        decode = token_decoder(tokenizer)
        for sample in samples:
            assert decode(sample) == tokenizer.decode(sample, skip_special_tokens=True)


def test_a_long_catch_up_goes_in_a_few_wide_runs_and_single_tokens_in_slots_of_one():
    cache = DynamicCache()
    for layer in range(2):
        cache.update(torch.zeros(3, 1, 4, 8), torch.zeros(3, 1, 4, 8), layer)
    rows = row_cache.RowCache(cache, torch.ones(3, 4, dtype=torch.long), None)
    assert rows.plan({0: [5], 1: [6], 2: [7]}, {0: 4, 1: 4, 2: 4}, 0).input_ids.shape == (3, 1)
    slots, width = rows.plan({0: list(range(200)), 1: [6], 2: [7]}, {0: 5, 1: 5, 2: 5}, 0).input_ids.shape
    assert width > 1 and slots <= 12  # not 50 narrow runs, each reading a copy of row 0's cache
    assert slots * width < 2 * 202  # nor one run per row as wide as row 0's block
