"""Attention masks for engines that feed rows unevenly or take tokens back.

Such engines leave masked-out columns between a row's tokens (a row that got fewer new tokens
than another in one forward) or drop a row's last tokens again.  Full attention does not mind:
dead columns are masked.  A sliding-window layer does: Hugging Face measures its window in
cache columns, dead ones included, and its sliding cache layers discard old columns, so neither
can be used there.  These engines therefore keep every token in plain cache layers and give the
model 4D masks that count each window in a row's live tokens (one mask per layer type where a
model mixes full and sliding layers, the mapping those models accept).  Layers whose state
cannot drop a token (recurrent or linear attention, chunked attention, layers sharing another's
cache) are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from moco_core.errors import MocoError

Windows = int | dict[str, int | None] | None
"""How many of a row's latest tokens attention sees (None: all): one window for every layer, or
one per layer type (``config.layer_types``: "full_attention", "sliding_attention")."""

UNEVEN_LAYERS = frozenset({"full_attention", "sliding_attention"})
"""Layer types an engine that feeds rows unevenly or takes tokens back can run."""


def attention_windows(config: Any) -> Windows:
    """The model's attention windows: one for all layers (None: full attention everywhere), or one
    per layer type where its layers differ (Gemma 2 and 3, Qwen 2 with sliding layers).

    Layers other than ``UNEVEN_LAYERS`` are refused in one line: their state cannot drop a token.
    """
    from transformers.cache_utils import get_layer_types_and_kwargs

    name = getattr(config, "model_type", None) or "this model"
    kinds, settings = get_layer_types_and_kwargs(config.get_text_config(decoder=True))
    others = sorted(set(kinds) - UNEVEN_LAYERS)
    if others:
        raise MocoError(
            f"{name} has {', '.join(others)} layers; this engine needs attention layers (full or "
            "sliding-window) whose cache can drop a token"
        )
    windows: dict[str, int | None] = {}
    for kind, setting in zip(kinds, settings, strict=True):
        window = setting.get("sliding_window") if kind == "sliding_attention" else None
        if windows.setdefault(kind, window) != window:
            raise MocoError(f"{name}: its {kind} layers differ in window; this engine needs one per layer type")
    if len(set(windows.values())) == 1:
        return next(iter(windows.values()))
    return windows


def check_uneven_members(models: Sequence[Any], purpose: str, indices: Iterable[int] | None = None) -> None:
    """At plan time, before any model loads: the members (``ModelConfig``s, those at ``indices``) of
    an engine that feeds rows unevenly must have layers it can run (``attention_windows``).

    Read from each local folder's config (an adapter's base's); hub ids pass, and so does an
    architecture this transformers does not know (loading says so).
    """
    from transformers import AutoConfig

    from moco_core.models import adapter_base, is_local_path

    for i in sorted(set(range(len(models)) if indices is None else indices)):
        model = models[i]
        path = adapter_base(model.path, model.base) or model.path
        if not is_local_path(path) or not (Path(path).expanduser() / "config.json").is_file():
            continue
        try:
            config = AutoConfig.from_pretrained(str(Path(path).expanduser()))
        except (OSError, ValueError, KeyError):
            continue
        try:
            attention_windows(config)
        except MocoError as exc:
            raise MocoError(f"models[{i}].path: {purpose} cannot use {model.path}: {exc}") from None


def per_layer_type(windows: Windows, build: Callable[[int | None], torch.Tensor]) -> Any:
    """``build(window)`` for the model's one window, or a mapping layer type -> mask (each distinct
    window built once)."""
    if not isinstance(windows, dict):
        return build(windows)
    built: dict[int | None, torch.Tensor] = {}
    for window in windows.values():
        if window not in built:
            built[window] = build(window)
    return {kind: built[window] for kind, window in windows.items()}


def as_additive(mask: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """A boolean mask as eager attention's additive one (``dtype``), or as is (None: sdpa)."""
    if dtype is None:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def windowed_masks(mask: torch.Tensor, queries: int, windows: Windows, dtype: torch.dtype | None) -> Any:
    """4D masks for a forward whose inputs are the last ``queries`` columns of the 2D ``mask``
    (1 where a column holds a row's token): each query sees its row's live columns up to its own
    and, in a sliding layer, only the latest ``window`` of those live tokens.  A query on a dead
    column (padding) sees itself alone."""
    live = mask.bool()
    columns = torch.arange(live.shape[1], device=live.device)
    query_columns = columns[live.shape[1] - queries :]
    seen = live.cumsum(-1)
    causal = live[:, None, :] & (columns <= query_columns[:, None])
    own = columns == query_columns[:, None]

    def build(window: int | None) -> torch.Tensor:
        visible = causal
        if window is not None:
            visible = visible & (seen[:, None, :] > seen[:, query_columns, None] - window)
        return as_additive((visible | own)[:, None], dtype)

    return per_layer_type(windows, build)


def uneven_windows(model: Any) -> Windows:
    """``attention_windows`` of a loaded model an engine will feed unevenly; sliding windows also
    need attention that takes 4D masks (sdpa or eager), so flash attention is refused there."""
    windows = attention_windows(model.config)
    attention = getattr(model.config, "_attn_implementation", None)
    if windows is not None and attention not in ("sdpa", "eager"):
        raise MocoError(
            f"{model.name_or_path}: sliding-window attention runs here only with sdpa or eager attention "
            f"(4D masks); this model uses {attention}"
        )
    return windows


def eager_dtype(model: Any) -> torch.dtype | None:
    """The dtype of additive masks where the model runs eager attention, else None."""
    if getattr(model.config, "_attn_implementation", None) == "eager":
        return next(model.parameters()).dtype
    return None
