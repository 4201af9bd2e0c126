"""A KV cache that gives every row its own run of columns, for engines that feed rows unevenly.

The text exchange feeds each row only the tokens its text gained, often a few for one row and
one or none for the others.  A cache that appends the same columns to every row pads all rows
to the widest block, and the padding piles up as masked-out columns.  Here row r's prompt fills
columns ``start[r]`` up to the prompt width (prompts are left-padded) and its later tokens go
right after its own last one, so forgetting a row's last tokens only moves its ``length`` back
and nothing is ever padded into the cache.

A forward is a batch of slots, each a run of one row's new tokens: a row's block is cut into
runs of one width, so a row with many new tokens takes several slots instead of padding every
other row to its length.  Each layer writes every slot's keys and values into its row's columns
before attention reads them, so a run sees the runs of its row before it; the 4D mask lets each
token see its row's columns up to its own.  A row's tokens fill its columns without gaps, so a
sliding-window layer's window (the last W tokens) is the last W columns: models that mix full
and sliding layers get one mask per layer type.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

from moco_core.engines.attention_masks import Windows, as_additive, eager_dtype, per_layer_type

SPARE_COLUMNS = 32
"""Columns the buffers get beyond what they need when they grow (or half again, if more)."""

SLOTS = 64
"""Most slots (batch entries) of one forward of one token per slot (attention's single-query
path), unless it feeds more rows than that."""

SLOT_COST = 8
"""What a slot costs beyond its tokens, in tokens.  Each slot reads a copy of its row's cache, so
a forward that feeds more tokens than ``SLOTS`` (a row catching up on a long text) takes the run
width that minimises slots x (width + SLOT_COST): a few wide runs rather than many narrow ones."""

_MASK_POSITIONED = frozenset({"bloom", "mpt"})
"""Model types that derive positions (ALiBi biases) from a 2D attention mask: no row cache."""


@dataclass
class Slots:
    """One forward over a row cache: per slot a run of one row's new tokens, left-padded."""

    input_ids: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor | dict[str, torch.Tensor]
    """The 4D mask, or one per layer type (the mapping models with mixed layer types accept)."""
    last: dict[int, int]
    """Per row, the slot that holds its last new token (the slot's last position)."""


class RowCache:
    """Every row's cached tokens in one run of columns of its own, ``[start, length)``, over the
    plain dynamic cache of a prompt forward (whose layers it replaces)."""

    def __init__(
        self,
        cache: Any,
        attention_mask: torch.Tensor,
        additive: torch.dtype | None,
        reserve: int = 0,
        windows: Windows = None,
    ) -> None:
        """``reserve``: columns to make room for now (the new tokens a decode expects), so the
        buffers need not grow, and copy themselves, step after step; ``windows``: the layers'
        attention windows."""
        count, prompt = attention_mask.shape
        self.device = attention_mask.device
        self.additive = additive
        self.windows = windows
        self.start = (prompt - attention_mask.sum(-1)).tolist()
        self.length = [prompt] * count
        self.select: torch.Tensor | None = None
        self.index = self.target = torch.empty((0, 1), dtype=torch.long, device=self.device)
        """Set by ``plan`` before every forward, read by every layer: the slots' rows (``select``:
        None when they are all rows in order) and the columns they write; the forward reads
        ``total`` columns."""
        self.total = prompt
        self.layers = [RowLayer(layer.keys, layer.values, self) for layer in cache.layers]
        cache.layers = self.layers
        self.columns = torch.arange(prompt + reserve + SPARE_COLUMNS, device=self.device)
        if reserve:
            for layer in self.layers:
                layer.widen(len(self.columns))

    @classmethod
    def over(
        cls, cache: Any, attention_mask: torch.Tensor, model: Any, reserve: int = 0, windows: Windows = None
    ) -> RowCache | None:
        """A row cache over ``cache`` (after a prompt forward with ``attention_mask``), or None where
        it cannot serve: layers other than plain dynamic ones (a cache built from the config, whose
        sliding layers discard tokens), attention other than sdpa or eager (no 4D masks),
        positions taken from a 2D mask."""
        layers = getattr(cache, "layers", [])
        config = model.config
        attention = getattr(config, "_attn_implementation", None)
        plain = layers and all(type(x) is DynamicLayer and x.is_initialized for x in layers)
        if attention not in ("sdpa", "eager") or not plain:
            return None
        if getattr(config, "alibi", False) or getattr(config, "model_type", "") in _MASK_POSITIONED:
            return None
        return cls(cache, attention_mask, eager_dtype(model), reserve, windows)

    def plan(self, blocks: dict[int, list[int]], positions: dict[int, int], pad_id: int) -> Slots:
        """The slots that feed ``blocks`` (row -> new tokens, whose positions start at
        ``positions[row]``), with every layer set to write them after each row's last token.

        Every token gets a slot of its own where that needs at most ``SLOTS`` slots; otherwise
        the run width (of 2, 3, 4, 6, 8, ...) is the one that minimises slots x (width +
        ``SLOT_COST``).  A row's first run takes the remainder, left-padded.  Padding writes to columns just past
        the row's new end (unused) and attends to its own column only.
        """
        total_tokens = sum(len(tokens) for tokens in blocks.values())
        width = 1
        if total_tokens > max(SLOTS, len(blocks)):
            lengths = [len(tokens) for tokens in blocks.values()]
            width = min(
                _widths(max(lengths)),
                key=lambda w: sum(-(-n // w) for n in lengths) * (w + SLOT_COST),
            )
        rows: list[int] = []
        ids: list[int] = []
        places: list[int] = []
        targets: list[int] = []
        lows: list[int] = []
        last: dict[int, int] = {}
        for row, tokens in blocks.items():
            length, n, start = self.length[row], len(tokens), positions[row]
            end = length + n
            pads = -n % width
            if pads:
                ids += [pad_id] * pads
                places += [0] * pads
                targets += range(end, end + pads)
                lows += range(end, end + pads)
            ids += tokens
            places += range(start, start + n)
            targets += range(length, end)
            lows += [self.start[row]] * n
            rows += [row] * ((pads + n) // width)
            last[row] = len(rows) - 1
            self.length[row] = end
        total = max(targets) + 1
        device = self.device
        flat = _long_tensor(ids + places + targets + lows + rows).to(device)
        index = flat[len(ids) * 4 :]
        input_ids, position_ids, target, low = flat[: len(ids) * 4].view(4, -1, 1, width, 1)
        self.select = None if rows == list(range(len(self.length))) else index
        self.index, self.target, self.total = index[:, None], target.view(-1, width), total
        if total > self.layers[0].key_buffer.shape[2]:
            for layer in self.layers:
                layer.widen(total + max(SPARE_COLUMNS, total // 2))
        if total > len(self.columns):
            self.columns = torch.arange(self.layers[0].key_buffer.shape[2], device=device)
        columns = self.columns[:total]

        def build(window: int | None) -> torch.Tensor:
            floor = low if window is None else torch.maximum(low, target - (window - 1))
            return as_additive((columns >= floor).logical_and_(columns <= target), self.additive)

        mask = per_layer_type(self.windows, build)
        input_ids, position_ids = input_ids.view(-1, width), position_ids.view(-1, width)
        return Slots(input_ids, position_ids, mask, last)


class RowLayer(DynamicLayer):
    """A dynamic cache layer that writes each slot's new keys and values to the columns its row
    cache planned, in a buffer with spare columns; a forward sees its slots' rows only."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: RowCache) -> None:
        super().__init__()
        self.is_initialized = True
        self.device = keys.device
        self.rows = rows
        self.key_buffer, self.value_buffer = keys, values
        self.keys, self.values = keys, values

    def widen(self, columns: int) -> None:
        self.key_buffer = _widened(self.key_buffer, columns)
        self.value_buffer = _widened(self.value_buffer, columns)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple:
        rows = self.rows
        self.key_buffer[rows.index, :, rows.target] = key_states.transpose(1, 2)
        self.value_buffer[rows.index, :, rows.target] = value_states.transpose(1, 2)
        self.keys = self.key_buffer[:, :, : rows.total]
        self.values = self.value_buffer[:, :, : rows.total]
        if rows.select is None:
            return self.keys, self.values
        return self.keys.index_select(0, rows.select), self.values.index_select(0, rows.select)


def _long_tensor(values: list[int]) -> torch.Tensor:
    """``torch.tensor(values)`` through an array's buffer: several times faster for short lists."""
    return torch.frombuffer(array("q", values), dtype=torch.long)


def _widths(longest: int) -> list[int]:
    """Run widths worth trying: 2, 3, 4, 6, 8, 12, ... up to ``longest``, and ``longest``."""
    widths, width = {longest}, 2
    while width < longest:
        widths |= {width, width + width // 2}
        width *= 2
    return sorted(w for w in widths if w <= longest)


def _widened(tensor: torch.Tensor, columns: int) -> torch.Tensor:
    """``tensor`` (batch, heads, columns, dim) copied into a zero-filled one ``columns`` wide."""
    wide = tensor.new_zeros((tensor.shape[0], tensor.shape[1], columns, tensor.shape[3]))
    wide[:, :, : tensor.shape[2]] = tensor
    return wide
