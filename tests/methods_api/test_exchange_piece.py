"""``ExchangeView.piece``: the text a token would add is exactly what writing it adds, in context."""

from __future__ import annotations

import pytest

from moco_core.backends.hf import HFBackend
from moco_core.engines.text_exchange import TextExchangeBatch
from moco_core.testing import build_sentencepiece_model
from moco_core.types import GenerationSettings

TEXT = "The café serves 世界 tea 🙂 at noon.\n  Twice:\tyes"


@pytest.fixture(scope="module")
def three_tokenizers(tiny_pool_paths, other_tokenizer_model, tmp_path_factory):
    sentencepiece = build_sentencepiece_model(tmp_path_factory.mktemp("piece") / "sp")
    backend = HFBackend()
    return [backend.load(str(p), "cpu", "float32") for p in (tiny_pool_paths[0], other_tokenizer_model, sentencepiece)]


def test_piece_is_what_write_adds_across_spans_multibyte_characters_and_tokenizers(three_tokenizers):
    settings = GenerationSettings(max_new_tokens=200, temperature=0.0, top_p=1.0, seed=0)
    batch = TextExchangeBatch(three_tokenizers, [0], [], settings, [0])
    chunks = [TEXT[i : i + 9] for i in range(0, len(TEXT), 9)]
    checked = 0
    for index, chunk in enumerate(chunks):  # each model writes a chunk in its own tokens, in turn
        model = index % len(three_tokenizers)
        for token in three_tokenizers[model].tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            expected = batch.piece(0, model, token)
            assert batch.write(0, model, token)
            assert batch.last_piece(0) == expected
            checked += 1
    assert checked > len(chunks)
    assert "".join(span.text for span in batch.spans[0]) == batch.texts[0]


def test_a_long_span_reads_as_its_whole_decoding_after_every_token(three_tokenizers):
    """A span's text settles where it ends in a whole character (byte-level decoders decode only the
    tokens since); it must still equal the decoding of all its tokens, a character split over
    several byte tokens included."""
    settings = GenerationSettings(max_new_tokens=200, temperature=0.0, top_p=1.0, seed=0)
    for model, hf in enumerate(three_tokenizers):
        batch = TextExchangeBatch(three_tokenizers, [0], [], settings, [0])
        ids = hf.tokenizer(TEXT, add_special_tokens=False)["input_ids"]
        partial = 0
        for count, token in enumerate(ids, start=1):
            assert batch.write(0, model, token)
            whole = hf.tokenizer.decode(ids[:count], skip_special_tokens=True)
            assert batch.texts[0] == whole
            partial += whole.endswith("\ufffd")
        assert batch.texts[0] == TEXT
        assert partial or model == 2, "no token split a character"
