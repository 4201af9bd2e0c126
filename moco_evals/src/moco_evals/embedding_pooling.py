"""How a sentence-embedding model turns token states into one vector, read from its own files.

sentence-transformers models declare their pipeline in ``modules.json`` and their pooling in
``<pooling folder>/config.json`` (CLS token, mean, max, mean/sqrt(length), last token; several
modes are concatenated). Mean pooling is right for MiniLM but wrong for a CLS-pooled model
such as BGE, so the pooling is read rather than assumed; a pipeline step moco does not apply
(a Dense projection, say) is refused instead of silently giving different embeddings. Cosine
similarity is taken after L2 normalisation either way, so a ``Normalize`` step changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

MODES = ("cls", "max", "mean", "mean_sqrt_len", "lasttoken")  # sentence-transformers' concatenation order
_CONFIG_KEYS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}
_APPLIED = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class Pooling:
    """The pooling modes of a model, applied in order and concatenated."""

    modes: tuple[str, ...] = ("mean",)


def read_pooling(folder: str | Path) -> Pooling:
    """The pooling a model folder declares; mean pooling for a folder without sentence-transformers files."""
    folder = Path(folder)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return Pooling()
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    pooling_path = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _APPLIED:
            raise MocoError(
                f"scoring.embedding_model: {folder} applies a sentence-transformers {kind} step that moco's "
                "embedding does not; choose a model whose pipeline is Transformer, Pooling, Normalize"
            )
        if kind == "Pooling":
            pooling_path = folder / str(module.get("path", ""))
    if pooling_path is None or not (pooling_path / "config.json").is_file():
        return Pooling()
    config = json.loads((pooling_path / "config.json").read_text(encoding="utf-8"))
    mode = config.get("pooling_mode")
    if isinstance(mode, str):  # newer sentence-transformers may name one mode directly
        modes: tuple[str, ...] = (mode.replace("_tokens", "").replace("_token", ""),)
    else:
        modes = tuple(m for m in MODES if config.get(_CONFIG_KEYS[m]))
    if config.get("pooling_mode_weightedmean_tokens"):
        raise MocoError(f"scoring.embedding_model: {folder} uses weighted-mean pooling, which moco does not apply")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise MocoError(f"scoring.embedding_model: {folder}: unsupported pooling {unknown or 'none'}")
    return Pooling(modes)


def pool(hidden: Any, mask: Any, pooling: Pooling) -> Any:
    """One vector per row of ``hidden`` (batch, tokens, dim) under ``mask`` (batch, tokens), right-padded."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    lengths = weights.sum(dim=1).clamp(min=1e-9)
    parts = []
    for mode in pooling.modes:
        if mode == "cls":
            parts.append(hidden[:, 0])
        elif mode == "max":
            parts.append(hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values)
        elif mode == "mean":
            parts.append((hidden * weights).sum(dim=1) / lengths)
        elif mode == "mean_sqrt_len":
            parts.append((hidden * weights).sum(dim=1) / lengths.sqrt())
        else:  # lasttoken
            last = mask.sum(dim=1).long().clamp(min=1) - 1
            parts.append(hidden[torch.arange(hidden.shape[0]), last])
    return torch.cat(parts, dim=-1)
