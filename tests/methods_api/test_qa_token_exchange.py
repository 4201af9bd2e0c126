"""Text exchange across tokenizer kinds: every model's cache equals a full re-read of the shared text.

Each kind (byte-level BPE, SentencePiece with and without byte fallback, a legacy Llama-2 tokenizer
whose normalizer prepends the word marker, a tokenizer without a pad token) is paired with the tiny
pool's tokenizer; the two take turns, and a scripted writer drops in texts with multi-byte
characters and runs of whitespace.  At every step each model's next-token distribution must equal
that of a reference that re-encodes prompt + whole text and runs a full forward.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines.full_recompute import ReferenceExchange
from moco_core.engines.text_exchange import Choice, ExchangeView, TextExchangeDecoder
from moco_core.testing import CHAT_TEMPLATE, CORPUS, SPECIAL_TOKENS, build_sentencepiece_model
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.nudging import NudgingPolicy

UNICODE_CORPUS = [
    *CORPUS,
    "Café naïve résumé — “quotes” 日本語のテキスト 中文 😀👍🏽 emoji\n\n\tindent   spaces",
    "über straße 東京 🙂 x\u00b2 ½",
]
PROMPTS = ["Café 日本 😀 — why?", "history\n\n  question", "The answer is"]
STARTS = ["", "Start  é\n", ""]
INSERTS = ["  é", "日本語", "\n\n", " 😀👍🏽", "   ", "naïve,", "\t x", "'s", "  \n word", " ½ b", " cafe\u0301 x"]
GREEDY = GenerationSettings(max_new_tokens=14, temperature=0.0, top_p=1.0, seed=0)


def _fast(tokenizer, folder: Path, pad: bool = True):
    from transformers import PreTrainedTokenizerFast

    names = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "unk_token": "<unk>"}
    if pad:
        names["pad_token"] = "<pad>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **names)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def _llama(folder: Path, tokenizer, seed: int) -> Path:
    from moco_core.testing import _save_tiny_llama

    return _save_tiny_llama(folder, tokenizer, seed)


def byte_level(
    folder: Path, seed: int, pad: bool = True, prefix_space: bool = False, normalizer=None, trim_offsets=False
) -> Path:
    """A GPT-2 style byte-level BPE over a corpus with accents, CJK and emoji (``trim_offsets``: a
    RoBERTa-style processor whose token offsets leave out their leading space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    if trim_offsets:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    trainer = trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(UNICODE_CORPUS * 4, trainer=trainer)
    folder.mkdir(parents=True)
    return _llama(folder, _fast(tokenizer, folder, pad), seed)


def metaspace_without_fallback(folder: Path, seed: int) -> Path:
    """SentencePiece-style (Metaspace) BPE without byte tokens: unknown characters become <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=380, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer=trainer)
    folder.mkdir(parents=True)
    return _llama(folder, _fast(tokenizer, folder), seed)


def legacy_prepend(folder: Path, seed: int) -> Path:
    """Llama 2's legacy layout: a normalizer that prepends "\u2581" and maps spaces, no pre-tokenizer."""
    from tokenizers import Tokenizer

    source = build_sentencepiece_model(folder.parent / f"{folder.name}-source", seed=seed, corpus=UNICODE_CORPUS)
    content = json.loads((source / "tokenizer.json").read_text())
    content["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    content["pre_tokenizer"] = None
    folder.mkdir(parents=True)
    return _llama(folder, _fast(Tokenizer.from_str(json.dumps(content)), folder), seed)


def build(kind: str, folder: Path) -> Path:
    from tokenizers import normalizers

    builders = {
        "byte_level": lambda: byte_level(folder, 3),
        "byte_level_no_pad": lambda: byte_level(folder, 8, pad=False),
        "sentencepiece_byte_fallback": lambda: build_sentencepiece_model(folder, corpus=UNICODE_CORPUS),
        "sentencepiece_always": lambda: build_sentencepiece_model(
            folder, seed=12, corpus=UNICODE_CORPUS, prepend_scheme="always"
        ),
        "sentencepiece_no_fallback": lambda: metaspace_without_fallback(folder, 5),
        "legacy_prepend_normalizer": lambda: legacy_prepend(folder, 6),
        "byte_level_prefix_space": lambda: byte_level(folder, 4, prefix_space=True),
        "byte_level_nfc": lambda: byte_level(folder, 10, normalizer=normalizers.NFC()),
        "byte_level_trim_offsets": lambda: byte_level(folder, 9, trim_offsets=True),
    }
    return builders[kind]()


def turns_with_inserts(seen: dict):
    """Writers swap every 2 steps; every third step the writer drops in a fixed tricky text.
    Records each model's distribution at every step in ``seen``."""

    def factory():
        def policy(view: ExchangeView) -> dict[int, Choice]:
            choices = {}
            model = (view.step // 2) % 2
            for p, log_probs in zip(view.active, view.log_probs(model, view.active), strict=True):
                row = view.prompt_index(p)
                seen[(row, view.step)] = log_probs
                if view.step % 3 == 2:
                    choices[p] = Choice(model, text=INSERTS[(view.step + row) % len(INSERTS)], tokens=1)
                else:
                    choices[p] = Choice(model, log_probs)
            return choices

        return policy

    return factory


def decode(decoder: TextExchangeDecoder, factory, settings=GREEDY):
    rendered = decoder.render(PROMPTS, [None, None])
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in PROMPTS]
    return decoder.decode(rendered, factory, settings, seeds, starts=STARTS)


@pytest.fixture(scope="module")
def tiny(tiny_pool_paths) -> HFModel:
    return HFBackend().load(str(tiny_pool_paths[0]), "cpu", "float32")


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    root, made = tmp_path_factory.mktemp("tokenizer-kinds"), {}

    def load(kind: str) -> HFModel:
        if kind not in made:
            made[kind] = HFBackend().load(str(build(kind, root / kind)), "cpu", "float32")
        return made[kind]

    return load


@pytest.mark.parametrize(
    "kind",
    [
        "byte_level",
        "byte_level_no_pad",
        "sentencepiece_byte_fallback",
        "sentencepiece_always",
        "sentencepiece_no_fallback",
        "legacy_prepend_normalizer",
        "byte_level_prefix_space",  # every re-encoded tail would gain a space: whole re-encodes instead
        "byte_level_nfc",  # NFC merges pre-tokens: raw offsets do not name the normalised text's words
        "byte_level_trim_offsets",  # token offsets leave out the leading space: the pre-tokens' starts
    ],
)
@pytest.mark.parametrize("first", [0, 1])
def test_every_step_matches_a_full_re_encode(tiny, kinds, kind, first):
    models = [tiny, kinds(kind)] if first == 0 else [kinds(kind), tiny]
    assert models[0].tokenizer.get_vocab() != models[1].tokenizer.get_vocab()
    if kind == "byte_level_no_pad":
        assert kinds(kind).tokenizer.pad_token is None or kinds(kind).tokenizer.pad_token == "<|im_end|>"
    fast_seen, slow_seen = {}, {}
    fast = decode(TextExchangeDecoder(models, batch_size=3), turns_with_inserts(fast_seen))
    slow = decode(ReferenceExchange(models, batch_size=1), turns_with_inserts(slow_seen))
    assert fast_seen.keys() == slow_seen.keys()
    drift = [k for k in slow_seen if not torch.allclose(fast_seen[k], slow_seen[k], atol=1e-4)]
    assert not drift, f"distributions differ from a full re-encode at (row, step) {drift[:4]}"
    assert [(r.text, [(s.model, s.text) for s in r.spans]) for r in fast] == [
        (r.text, [(s.model, s.text) for s in r.spans]) for r in slow
    ]
    assert any(ch in r.text for r in fast for ch in "日本😀é"), "no multi-byte text reached the caches"


@pytest.mark.parametrize("kind", ["sentencepiece_byte_fallback", "legacy_prepend_normalizer", "byte_level_no_pad"])
def test_nudging_greedy_text_equals_the_reference(tiny, kinds, kind):
    models = [kinds(kind), tiny]  # the base has the other tokenizer; the tiny pool model nudges it

    def factory():
        return NudgingPolicy(0, 1, 0.1)

    fast = decode(TextExchangeDecoder(models, batch_size=3), factory)
    slow = decode(ReferenceExchange(models, batch_size=1), factory)
    assert [(r.text, [(s.model, s.text) for s in r.spans]) for r in fast] == [
        (r.text, [(s.model, s.text) for s in r.spans]) for r in slow
    ]
    assert sum(len({s.model for s in r.spans}) == 2 for r in fast) >= 2, "too few handovers to test anything"
