"""Everything that turns data on disk into a ``Dataset``: benchmark JSON, user files, registered keys.

Every source ends in one schema: items are multiple choice (``question``, ``choices`` as key ->
text, ``answer``) or free form (``input``, ``output``); other keys travel along as extras. User
files may be benchmark-format JSON, JSONL, CSV or a ``datasets.save_to_disk`` folder, with a
``fields`` mapping from our names to theirs. Errors are one line naming the file, split, index
and field, and nothing is returned half-loaded. Values are parsed as JSON, never evaluated.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError
from moco_core.registry import DatasetSpec
from moco_core.types import Dataset, Example

SPLITS = ("dev", "test")
DATA_DIR_ENV = "MOCO_DATA_DIR"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Task types scored without a gold answer (sandboxed tests, a category, a reward model, references).
ANSWERLESS_TASKS = frozenset({"coding", "noncompliance", "reward_model", "generation_diversity"})
_DEV_SPLITS = ("dev", "validation")
_KNOWN = frozenset({"id", "question", "input", "answer", "output", "choices"})

Fields = Mapping[str, str | Sequence[str]]


def _choices(value: Any, where: str) -> tuple[dict[str, str], bool]:
    """Options as key -> text, and whether they came as a list (keyed A, B, C... by position).

    CSV cells and some hub exports hold the options as a JSON string, so strings are decoded.
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise MocoError(f"{where}: field 'choices' is not a JSON object of key -> text") from None
    if isinstance(value, list) and 0 < len(value) <= len(LETTERS):
        return {LETTERS[i]: str(text) for i, text in enumerate(value)}, True
    if not isinstance(value, dict) or not value:
        raise MocoError(f"{where}: field 'choices' must be a non-empty object of key -> text")
    return {str(k): str(v) for k, v in value.items()}, False


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
    elif task_type in ANSWERLESS_TASKS:
        answer = None
    else:
        raise MocoError(f"{where}: missing field 'answer' (or 'output')")
    choices = item.get("choices")
    if choices is not None:
        choices, positional = _choices(choices, where)
        if positional and isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(choices):
            answer = LETTERS[answer]
    elif task_type == "multiple_choice":
        raise MocoError(f"{where}: missing field 'choices'")
    return Example(
        index=index,
        id=str(item.get("id", index)),
        question=question,
        answer=answer,
        task_type=task_type,
        choices=choices,
        extra={k: v for k, v in item.items() if k not in _KNOWN},
    )


def _plain(text: str) -> str:
    return " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())


def gold_is_an_option(answer: Any, choices: Mapping[str, str]) -> bool:
    """Whether a multiple-choice gold names one option: its key (in any case) or its whole text."""
    if answer is None or isinstance(answer, (dict, list, bool)):
        return False
    gold = str(answer).strip()
    if gold in choices or gold.upper() in {key.upper() for key in choices}:
        return True
    plain = _plain(gold)
    return bool(plain) and sum(_plain(text) == plain for text in choices.values()) == 1


def check_gold_options(dataset: Dataset) -> Dataset:
    """Refuse a multiple-choice item whose answer is none of its options: it could never score."""
    if dataset.task_type != "multiple_choice":
        return dataset
    for split in SPLITS:
        for example in getattr(dataset, split):
            if example.choices is not None and not gold_is_an_option(example.answer, example.choices):
                raise MocoError(
                    f"{dataset.source}: {split}[{example.index}] (id {example.id!r}): answer {example.answer!r} "
                    f"is not one of its options ({', '.join(example.choices)})"
                )
    return dataset


def map_fields(item: Any, fields: Fields, where: str) -> Any:
    """``item`` with our schema names taken from the columns ``fields`` names.

    A list of columns for ``choices`` builds the options A, B, C... from those columns. Mapped
    source columns are dropped; every other column stays and becomes an extra.
    """
    if not fields or not isinstance(item, dict):
        return item
    columns = {c for theirs in fields.values() for c in ([theirs] if isinstance(theirs, str) else theirs)}
    mapped = {k: v for k, v in item.items() if k not in columns}
    for ours, theirs in fields.items():
        names = [theirs] if isinstance(theirs, str) else list(theirs)
        for column in names:
            if column not in item:
                raise MocoError(f"{where}: missing field {column!r} (mapped to {ours!r})")
        if isinstance(theirs, str):
            mapped[ours] = item[theirs]
        else:
            mapped[ours] = {LETTERS[i]: item[column] for i, column in enumerate(names)}
    return mapped


def build_split(
    items: Sequence[Any], split: str, task_type: str, source: str, fields: Fields | None = None
) -> list[Example]:
    """Examples of one split, validated item by item so an error names split, index and field."""
    examples = []
    for i, item in enumerate(items):
        mapped = map_fields(item, fields or {}, f"{source}: {split}[{i}]")
        examples.append(_example(mapped, i, split, task_type, source))
    return examples


def parse_benchmark(
    data: Any, source: str, default_name: str = "", task_type: str | None = None, fields: Fields | None = None
) -> Dataset:
    """A ``Dataset`` from an already-parsed benchmark document; ``task_type`` overrides the file's."""
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
        splits[split] = build_split(items, split, task_type, source, fields)
    name = data.get("name") or data.get("dataset") or default_name
    dataset = Dataset(name=str(name), task_type=task_type, dev=splits["dev"], test=splits["test"], source=source)
    return check_gold_options(dataset)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MocoError(f"{path}: malformed JSON: {exc}") from None


def load_benchmark_file(path: str | Path, task_type: str | None = None) -> Dataset:
    """Read one benchmark JSON file."""
    path = Path(path)
    if not path.is_file():
        raise MocoError(f"{path}: data file not found")
    return parse_benchmark(_read_json(path), str(path), path.stem, task_type)


def _jsonl_items(path: Path) -> Iterator[Any]:
    try:
        yield from _jsonl_lines(path)
    except UnicodeDecodeError as exc:
        raise MocoError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _jsonl_lines(path: Path) -> Iterator[Any]:
    with path.open(encoding="utf-8") as handle:
        index = 0
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise MocoError(f"{path}: test[{index}] (line {number}): malformed JSON: {exc}") from None
            index += 1


def _csv_items(path: Path) -> Iterator[dict[str, Any]]:
    try:
        yield from _csv_rows(path)
    except UnicodeDecodeError as exc:
        raise MocoError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        index = 0
        try:
            for row in reader:
                if None in row:
                    raise MocoError(f"{path}: test[{index}] (line {reader.line_num}): more cells than header columns")
                yield row
                index += 1
        except csv.Error as exc:
            raise MocoError(f"{path}: test[{index}] (line {reader.line_num}): malformed CSV: {exc}") from None


def _disk_splits(path: Path) -> tuple[list[Any], list[Any]]:
    """Dev and test rows of a ``save_to_disk`` folder: ``test`` (or a lone split) and ``dev``/``validation``."""
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for a folder it cannot read
        raise MocoError(f"{path}: not a dataset saved with save_to_disk: {str(exc).splitlines()[0]}") from None
    if isinstance(saved, datasets.Dataset):
        return [], saved.to_list()
    names = list(saved)
    test = "test" if "test" in names else (names[0] if len(names) == 1 else None)
    if test is None:
        raise MocoError(f"{path}: no 'test' split (found {', '.join(names)})")
    dev = next((name for name in _DEV_SPLITS if name in names and name != test), None)
    return (saved[dev].to_list() if dev else []), saved[test].to_list()


def load_user_data(path: str | Path, task_type: str | None = None, fields: Fields | None = None) -> Dataset:
    """A user's data file: benchmark JSON (or a plain JSON list), JSONL, CSV or a ``save_to_disk`` folder.

    Only benchmark-format JSON carries its own task type; the other formats need ``task_type``.
    Rows of JSONL, CSV and lists are all test items, so dev is empty unless the format has a dev
    (or validation) split.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MocoError(f"{path}: data file not found")
    suffix = path.suffix.lower()
    if path.is_file() and suffix == ".json":
        data = _read_json(path)
        if isinstance(data, dict):
            return parse_benchmark(data, str(path), path.stem, task_type, fields)
        if not isinstance(data, list):
            raise MocoError(f"{path}: expected a benchmark object with 'dev' and 'test' lists, or a list of items")
        dev_items, test_items = [], data
    elif path.is_file() and suffix == ".jsonl":
        dev_items, test_items = [], list(_jsonl_items(path))
    elif path.is_file() and suffix == ".csv":
        dev_items, test_items = [], list(_csv_items(path))
    elif path.is_dir():
        dev_items, test_items = _disk_splits(path)
    else:
        raise MocoError(f"{path}: unsupported data file; use .json, .jsonl, .csv or a save_to_disk folder")
    if task_type is None:
        raise MocoError(f"{path}: dataset.task_type is required: only benchmark-format JSON declares its own")
    dev = build_split(dev_items, "dev", task_type, str(path), fields)
    test = build_split(test_items, "test", task_type, str(path), fields)
    return check_gold_options(Dataset(name=path.stem, task_type=task_type, dev=dev, test=test, source=str(path)))


def load_registered(spec: DatasetSpec, source: str = "auto", data_dir: str | None = None, seed: int = 0) -> Dataset:
    """A registered dataset from its benchmark file or its public source.

    ``auto`` prefers the benchmark file when the data folder (``data_dir``, else
    ``$MOCO_DATA_DIR``) has it, so results stay comparable with the shared files, and falls back
    to the hub otherwise; a dataset without a hub mapping always reads its file, whose loader
    explains what to set when it is missing.
    """
    folder = data_dir or os.environ.get(DATA_DIR_ENV) or None
    chosen = source
    if source == "auto":
        has_file = bool(spec.loader) and folder is not None and spec.benchmark_file(folder).is_file()
        chosen = "hub" if spec.hub_loader and not has_file else "file"
    if chosen == "file":
        if not spec.loader:
            raise MocoError(f"dataset.source: {spec.key} has no benchmark file; use source 'hub' or 'auto'")
        return spec.load(folder)
    if not spec.hub_loader:
        raise MocoError(f"dataset.source: {spec.key} has no public-source mapping; use its benchmark file")
    try:
        return spec.load_hub(seed)
    except MocoError as exc:
        if source != "auto" or not spec.loader:
            raise
        missing = "no data folder is given" if folder is None else f"{folder} has no {spec.key}.json"
        hint = f"set {DATA_DIR_ENV} or dataset.data_dir to the folder holding the benchmark files"
        raise MocoError(f"{exc} (and {missing}: {hint})") from None


def limit_dataset(dataset: Dataset, limit: int | None) -> Dataset:
    """Keep the first ``limit`` items of each split (the files are already shuffled)."""
    if limit is None:
        return dataset
    dataset.dev = dataset.dev[:limit]
    dataset.test = dataset.test[:limit]
    return dataset
