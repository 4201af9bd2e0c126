"""Encoding pre-token by pre-token gives exactly the tokenizer's own ids, or declines."""

from __future__ import annotations

import random

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from moco_core.engines import pretoken_encoding
from moco_core.engines.pretoken_encoding import PreTokenEncoder
from moco_core.testing import CORPUS, build_tiny_tokenizer

PIECES = [
    "the", " the", "  ", "\n", "\n\n", " ", "answer", "é", "e\u0301", "ö", "12345", " 7", "!", "?", "...",
    "\U0001f642", "\u4e2d\u6587", " model swarm", "<think>", "<|im_end|>", "<|endoftext|>", "\t", "Model",
    "math,", "'s", " don't", "\u00a0", "x",
]  # fmt: skip


def _wordpiece() -> PreTrainedTokenizerFast:
    """A BERT-like tokenizer: a normalizer that lowercases and strips accents, WordPiece."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[UNK]", "[SEP]"], show_progress=False)
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")


def _digits_nfc_added() -> PreTrainedTokenizerFast:
    """NFC, single-digit splitting before byte-level BPE (as Qwen and Llama 3 do), added tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=350,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    fast.add_tokens(["model swarm", "<think>"])
    return fast


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PreTrainedTokenizerFast]:
    root = tmp_path_factory.mktemp("pretoken")
    return {
        "byte-level BPE": build_tiny_tokenizer(root / "a"),
        "fewer merges": build_tiny_tokenizer(root / "b", 300, CORPUS[::-1]),
        "WordPiece, lowercasing": _wordpiece(),
        "NFC, digits, added tokens": _digits_nfc_added(),
    }


def _reference(tokenizer: PreTrainedTokenizerFast, text: str, offset: int) -> tuple[list[int], list[tuple[int, int]]]:
    """The tokenizer's own encode, and each word's first token with the word's start."""
    backend = tokenizer.backend_tokenizer
    encoding = backend.encode(text, add_special_tokens=False)
    starts = [start for _, (start, _) in backend.pre_tokenizer.pre_tokenize_str(text)]
    words = encoding.word_ids
    pairs = zip(words, [None, *words], strict=False)  # each token's word and its predecessor's
    firsts = [i for i, (word, before) in enumerate(pairs) if word not in (before, None)]
    return encoding.ids, [(i, offset + starts[words[i]]) for i in firsts]


@pytest.mark.parametrize(
    "name", ["byte-level BPE", "fewer merges", "WordPiece, lowercasing", "NFC, digits, added tokens"]
)
def test_matches_the_tokenizer_or_declines(tokenizers: dict, name: str) -> None:
    tokenizer = tokenizers[name]
    encoder = PreTokenEncoder.over(tokenizer)
    assert encoder is not None
    rng = random.Random(name)
    matched = declined = 0
    for _ in range(1500):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8)))
        offset = rng.randint(0, 50)
        got = encoder.encode(text, offset)
        if got is None:
            declined += 1
            backend = tokenizer.backend_tokenizer
            added = any(t.content in text for t in backend.get_added_tokens_decoder().values())
            normalised = backend.normalizer is not None and backend.normalizer.normalize_str(text) != text
            assert added or normalised, f"declined {text!r} without an added token or a normalisation"
            continue
        matched += 1
        assert got == _reference(tokenizer, text, offset), f"{name}: {text!r}"
    assert matched > 300 and declined > 50


def test_texts_with_added_tokens_are_declined(tokenizers: dict) -> None:
    encoder = PreTokenEncoder.over(tokenizers["NFC, digits, added tokens"])
    assert encoder is not None
    assert encoder.encode("we use a model swarm here") is None  # an added token that is plain words
    assert encoder.encode("done<|endoftext|>") is None
    assert encoder.encode("we use a model here") is not None


def test_normalised_texts_are_declined(tokenizers: dict) -> None:
    encoder = PreTokenEncoder.over(tokenizers["WordPiece, lowercasing"])
    assert encoder is not None
    assert encoder.encode("The answer") is None
    assert encoder.encode("the answer") is not None


def test_no_encoder_without_a_pre_tokenizer_or_with_dropout() -> None:
    bare = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")]))
    assert PreTokenEncoder.over(PreTrainedTokenizerFast(tokenizer_object=bare)) is None
    dropped = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")], dropout=0.5))
    dropped.pre_tokenizer = pre_tokenizers.Whitespace()
    assert PreTokenEncoder.over(PreTrainedTokenizerFast(tokenizer_object=dropped)) is None
    assert PreTokenEncoder.over(object()) is None


def test_the_memo_starts_over_when_full(tokenizers: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretoken_encoding, "MEMO_LIMIT", 4)
    tokenizer = tokenizers["byte-level BPE"]
    encoder = PreTokenEncoder.over(tokenizer)
    assert encoder is not None
    text = " ".join(CORPUS[2].split()[:12])
    assert encoder.encode(text) == _reference(tokenizer, text, 0)
    assert len(encoder.memo) <= 4
    assert encoder.encode(text) == _reference(tokenizer, text, 0)


def test_an_added_token_is_found_in_its_normalised_form_too() -> None:
    """A lowercasing tokenizer reads "zebra" as the added token "Zebra": such texts are declined."""
    tokenizer = _wordpiece()
    tokenizer.add_tokens(["Zebra"])
    assert tokenizer.backend_tokenizer.encode("a zebra", add_special_tokens=False).ids[
        -1
    ] == tokenizer.convert_tokens_to_ids("Zebra")
    encoder = PreTokenEncoder.over(tokenizer)
    assert encoder is not None
    assert encoder.encode("a zebra b") is None
    assert encoder.encode("a zeb b") == _reference(tokenizer, "a zeb b", 0)
