"""File quirks repaired by ``quirks.normalize_items``, on small hand-made datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moco_core.registry import DatasetSpec
from moco_core.types import Dataset, Example
from moco_evals.benchmarks import load_benchmark
from moco_evals.quirks import (
    count_unscorable,
    duplicate_ids,
    is_unscorable,
    normalize_example,
    normalize_items,
    parse_aliases,
    unscorable_items,
    unscorable_reason,
)


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('["Toulon", "Port-la-Montagne"]', ["Toulon", "Port-la-Montagne"]),
        ('  ["A"]  ', ["A"]),
        ("[1, 2]", "[1, 2]"),
        ("[]", "[]"),
        ("[not json", "[not json"),
        ("['single', 'quotes']", "['single', 'quotes']"),
        ("[__import__('os').system('echo hi')]", "[__import__('os').system('echo hi')]"),
        ("Toulon", "Toulon"),
        (None, None),
        (["already", "a list"], ["already", "a list"]),
    ],
)
def test_parse_aliases_only_reads_json_lists_of_strings(raw: object, parsed: object) -> None:
    assert parse_aliases(raw) == parsed


def mc(answer: object, choices: dict[str, str]) -> Example:
    return Example(0, "q", "?", answer, "multiple_choice", dict(choices))


@pytest.mark.parametrize(
    ("answer", "choices", "gold", "reason"),
    [
        ("B", {"A": "x", "B": "y"}, "B", None),
        ("b", {"A": "x", "B": "y"}, "B", None),
        (" B ", {"A": "x", "B": "y"}, "B", None),
        ("y", {"A": "x", "B": "y"}, "B", None),
        (3, {"1": "x", "2": "y", "3": "z", "4": "w"}, "3", None),
        ("id", {"A": "x", "B": "y", "C": "z", "id": "w"}, "id", None),
        ("E", {"A": "x", "B": "y"}, "E", "gold 'E' is not an option key"),
        (None, {"A": "x"}, None, "no gold answer"),
    ],
)
def test_multiple_choice_gold_becomes_a_key(
    answer: object, choices: dict[str, str], gold: object, reason: str | None
) -> None:
    example = normalize_example(mc(answer, choices))
    assert example.answer == gold
    assert example.extra.get("unscorable") == reason


@pytest.mark.parametrize(
    ("example", "reason"),
    [
        (Example(0, "m", "?", None, "exact_match"), "no gold answer"),
        (Example(0, "m", "?", "  ", "exact_match"), "no gold answer"),
        (Example(0, "m", "?", "} }", "exact_match"), None),
        (Example(0, "m", "?", 0, "exact_match"), None),
        (Example(0, "p", "?", [], "f1_match"), "no gold answer"),
        (Example(0, "c", "?", None, "coding", extra={"test": ""}), "no tests"),
        (Example(0, "c", "?", None, "coding", extra={}), "no tests"),
        (Example(0, "c", "?", None, "coding", extra={"test": "assert f() == 1"}), None),
        (Example(0, "n", "?", None, "noncompliance", extra={"category": "x"}), None),
        (Example(0, "r", "?", None, "reward_model"), None),
    ],
)
def test_unscorable_reasons(example: Example, reason: str | None) -> None:
    assert unscorable_reason(example) == reason


def dataset() -> Dataset:
    dev = [Example(0, "1", "?", None, "exact_match"), Example(1, "1", "?", "4", "exact_match")]
    test = [Example(0, "7", "?", '["a", "b"]', "exact_match"), Example(1, "7", "?", None, "exact_match")]
    return Dataset("toy", "exact_match", dev, test)


def test_normalize_items_marks_lists_and_counts() -> None:
    data = normalize_items(dataset())
    assert data.test[0].answer == ["a", "b"]
    assert count_unscorable(data) == {"dev": 1, "test": 1}
    assert [(split, ex.index) for split, ex in unscorable_items(data)] == [("dev", 0), ("test", 1)]
    assert duplicate_ids(data) == {"dev": 1, "test": 1}
    assert [ex.key for ex in data.dev] == ["0:1", "1:1"]


def test_normalize_items_is_idempotent_and_clears_stale_marks() -> None:
    data = normalize_items(normalize_items(dataset()))
    assert count_unscorable(data) == {"dev": 1, "test": 1}
    data.dev[0].answer = "5"
    normalize_items(data)
    assert not is_unscorable(data.dev[0])


def test_loader_applies_the_repairs(tmp_path: Path) -> None:
    document = {
        "dataset": "aliases",
        "task_type": "f1_match",
        "dev": [],
        "test": [
            {"id": 1, "input": "Capital of Var?", "output": '["Toulon", "Tolon"]'},
            {"id": 1, "input": "?", "output": None},
        ],
    }
    (tmp_path / "aliases.json").write_text(json.dumps(document), encoding="utf-8")
    spec = DatasetSpec(key="aliases", task_type="f1_match", loader="moco_evals.benchmarks:load_benchmark")
    loaded = load_benchmark(spec, tmp_path)
    assert loaded.name == "aliases"
    assert loaded.test[0].answer == ["Toulon", "Tolon"]
    assert loaded.test[1].extra["unscorable"] == "no gold answer"
