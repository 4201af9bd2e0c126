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
