"""Checks of a local model folder's weight files and context length, without loading a tensor.

A safetensors file is an 8-byte little-endian header length, a JSON header naming every
tensor's dtype, shape and byte range, then the bytes. Reading the header is enough to refuse a
random, truncated or cut-short file in one line before anything loads; loading it would fail
deep inside a library (or, for a truncated file, only when the missing tensor is touched).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

SAFETENSORS_INDEX = "model.safetensors.index.json"
MAX_HEADER = 100 * 1024 * 1024  # the format's own limit
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def _header(path: Path, size: int) -> tuple[dict[str, Any], int]:
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise MocoError(f"{path}: damaged safetensors file ({size} bytes, shorter than its header length)")
        (length,) = struct.unpack("<Q", prefix)
        if length > MAX_HEADER or 8 + length > size:
            raise MocoError(f"{path}: damaged safetensors file (header length {length} does not fit {size} bytes)")
        raw = handle.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise MocoError(f"{path}: damaged safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise MocoError(f"{path}: damaged safetensors file (its header is not a JSON object)")
    return header, 8 + length


def check_safetensors(path: str | Path) -> None:
    """Refuse a safetensors file whose header is unreadable or whose tensors run past its end."""
    path = Path(path)
    size = path.stat().st_size
    header, start = _header(path, size)
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            expected = math.prod(shape) * DTYPE_BYTES[dtype] if dtype in DTYPE_BYTES else None
            valid = isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end
        except (TypeError, KeyError, ValueError):
            raise MocoError(f"{path}: damaged safetensors file (bad header entry for tensor {name!r})") from None
        if not valid or (expected is not None and end - begin != expected):
            raise MocoError(f"{path}: damaged safetensors file (bad byte range for tensor {name!r})")
        if start + end > size:
            raise MocoError(
                f"{path}: truncated safetensors file (tensor {name!r} ends at byte {start + end}, the file has {size})"
            )


def check_weight_files(folder: str | Path) -> None:
    """Check every safetensors file of a model folder, and that an index names only present shards."""
    folder = Path(folder)
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
            shards = set(weight_map.values())
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, TypeError):
            raise MocoError(f"{index}: damaged safetensors index (not a JSON object with a 'weight_map')") from None
        missing = sorted(str(s) for s in shards if not (folder / str(s)).is_file())
        if missing:
            raise MocoError(f"{index}: names shard {missing[0]}, which is missing")
    for file in sorted(folder.glob("*.safetensors")):
        check_safetensors(file)


def context_length(folder: str | Path) -> int | None:
    """The positions a model has, from its ``config.json`` (None when it does not say)."""
    config_file = Path(folder) / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(config, dict):
        return None
    sources = [config, config.get("text_config") or {}]
    for source in sources:
        for key in CONTEXT_KEYS:
            value = source.get(key) if isinstance(source, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None
