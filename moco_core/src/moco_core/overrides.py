"""``--set generation.temperature=0``: dotted overrides applied to a config mapping before validation.

Values are read as YAML scalars or flow collections (``0`` is a number, ``null`` is None,
``[a, b]`` a list), so an override means what the same text means in the file; the result is
validated exactly like the file, so a misspelled key or a bad value is refused the same way.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import yaml

from moco_core.errors import MocoError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """``"a.b.0.c=value"`` as (``["a", "b", 0, "c"]``, parsed value)."""
    key, separator, raw = item.partition("=")
    parts = key.strip().split(".")
    if not separator or not all(_KEY.fullmatch(part) for part in parts):
        raise MocoError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. generation.temperature=0")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise MocoError(f"--set {item!r}: malformed value ({str(exc).splitlines()[0]})") from None
    return [int(p) if p.isdigit() else p for p in parts], value


def set_dotted(data: dict[str, Any], path: list[str | int], value: Any, label: str) -> None:
    """Set ``data[a][b][0][c] = value`` for ``path`` ``[a, b, 0, c]``; missing mappings are created."""
    node: Any = data
    for depth, part in enumerate(path):
        where = ".".join(str(p) for p in path[: depth + 1])
        last = depth == len(path) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise MocoError(f"{label}: {where} is not an existing list item")
        elif not isinstance(node, dict):
            raise MocoError(f"{label}: {where} is inside a value that is not a mapping")
        if last:
            node[part] = value
        else:
            node = node[part] if isinstance(part, int) else node.setdefault(part, {})


def apply_overrides(data: dict[str, Any], items: list[str] | dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each override set: ``KEY=VALUE`` texts (``--set``) or a ``{dotted key: value}``
    mapping (the Python API); missing sections are created."""
    result = copy.deepcopy(data)
    if isinstance(items, dict):
        for key, value in items.items():
            path, _ = parse_override(f"{key}=")
            set_dotted(result, path, value, f"override {key!r}")
        return result
    for item in items:
        path, value = parse_override(item)
        set_dotted(result, path, value, f"--set {item!r}")
    return result
