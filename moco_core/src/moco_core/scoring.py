"""Scoring outputs produced elsewhere (another toolkit, an API model) with moco's scorers.

Each line of a predictions file names its item by ``index`` (position in the split) or by
``id``; ids are not unique in every dataset, so an ambiguous id is refused rather than guessed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError
from moco_core.types import Example


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise MocoError(f"{path}: predictions file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MocoError(f"{path}: line {line}: not UTF-8 text (byte {data[exc.start]:#04x})") from None
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MocoError(f"{path}: line {number}: malformed JSON ({exc.msg})") from None
        if not isinstance(line, dict):
            raise MocoError(f"{path}: line {number}: expected an object")
        lines.append((number, line))
    return lines


def match_lines(
    path: Path, lines: list[tuple[int, dict[str, Any]]], examples: list[Example], split: str
) -> list[tuple[Example, str]]:
    """Pair every line with its example; any unmatched or ambiguous line is a one-line error."""
    by_id: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_id[example.id].append(example)
    pairs = []
    first_line: dict[int, int] = {}
    for number, line in lines:
        where = f"{path}: line {number}"
        output = line.get("output")
        if not isinstance(output, str):
            raise MocoError(f"{where}: missing 'output' (a string)")
        if "index" in line:
            index = line["index"]
            if isinstance(index, bool):
                raise MocoError(f"{where}: index {index!r} is a boolean, not an item position")
            if not isinstance(index, int) or not 0 <= index < len(examples):
                raise MocoError(f"{where}: index {index!r} is not in the {split} split (0..{len(examples) - 1})")
            example = examples[index]
            if "id" in line and str(line["id"]) != example.id:
                raise MocoError(f"{where}: id {line['id']!r} does not match item {index} (id {example.id!r})")
        elif "id" in line:
            found = by_id.get(str(line["id"]), [])
            if not found:
                raise MocoError(f"{where}: no item with id {line['id']!r} in the {split} split")
            if len(found) > 1:
                raise MocoError(f"{where}: id {line['id']!r} is not unique in the {split} split; give 'index'")
            example = found[0]
        else:
            raise MocoError(f"{where}: needs 'index' or 'id'")
        if id(example) in first_line:
            raise MocoError(
                f"{where}: item {example.index} (id {example.id!r}) was already given on line "
                f"{first_line[id(example)]}; give each item once"
            )
        first_line[id(example)] = number
        pairs.append((example, output))
    return pairs
