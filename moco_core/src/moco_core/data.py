"""Loading the benchmark JSON format into ``Dataset``: ``{name|dataset, task_type, dev, test}``.

Items are either multiple choice (``question``, ``choices`` as key -> text, ``answer``) or free
form (``input``, ``output``).  Errors name the file, split, index and field, and nothing is
returned half-loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError
from moco_core.types import Dataset, Example

SPLITS = ("dev", "test")


def _example(item: Any, index: int, split: str, task_type: str, source: str) -> Example:
    where = f"{source}: {split}[{index}]"
    if not isinstance(item, dict):
        raise MocoError(f"{where}: item must be an object")
    question = item.get("question", item.get("input"))
    if not isinstance(question, str):
        raise MocoError(f"{where}: missing field 'question' (or 'input')")
    if "answer" in item:
        answer = item["answer"]
    elif "output" in item:
        answer = item["output"]
    else:
        raise MocoError(f"{where}: missing field 'answer' (or 'output')")
    choices = item.get("choices")
    if choices is not None:
        if not isinstance(choices, dict) or not choices:
            raise MocoError(f"{where}: field 'choices' must be a non-empty object of key -> text")
        choices = {str(k): str(v) for k, v in choices.items()}
    elif task_type == "multiple_choice":
        raise MocoError(f"{where}: missing field 'choices'")
    known = {"id", "question", "input", "answer", "output", "choices"}
    return Example(
        index=index,
        id=str(item.get("id", index)),
        question=question,
        answer=answer,
        task_type=task_type,
        choices=choices,
        extra={k: v for k, v in item.items() if k not in known},
    )


def parse_benchmark(data: Any, source: str, default_name: str = "", task_type: str | None = None) -> Dataset:
    """A ``Dataset`` from an already-parsed benchmark document."""
    if not isinstance(data, dict):
        raise MocoError(f"{source}: expected an object with 'dev' and 'test' lists")
    task_type = task_type or data.get("task_type")
    if not isinstance(task_type, str):
        raise MocoError(f"{source}: missing field 'task_type'")
    splits: dict[str, list[Example]] = {}
    for split in SPLITS:
        items = data.get(split, [] if split == "dev" else None)
        if not isinstance(items, list):
            raise MocoError(f"{source}: missing list '{split}'")
        splits[split] = [_example(item, i, split, task_type, source) for i, item in enumerate(items)]
    name = data.get("name") or data.get("dataset") or default_name
    return Dataset(name=str(name), task_type=task_type, dev=splits["dev"], test=splits["test"], source=source)


def load_benchmark_file(path: str | Path, task_type: str | None = None) -> Dataset:
    """Read one benchmark JSON file."""
    path = Path(path)
    if not path.is_file():
        raise MocoError(f"{path}: data file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MocoError(f"{path}: malformed JSON: {exc}") from None
    return parse_benchmark(data, str(path), path.stem, task_type)


def limit_dataset(dataset: Dataset, limit: int | None) -> Dataset:
    """Keep the first ``limit`` items of each split (the files are already shuffled)."""
    if limit is None:
        return dataset
    dataset.dev = dataset.dev[:limit]
    dataset.test = dataset.test[:limit]
    return dataset
