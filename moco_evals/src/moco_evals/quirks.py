"""The real quirks of the benchmark files, repaired in one place so every scorer sees one schema.

* gold aliases stored as a JSON-list string (``popqa``) become a list (``json.loads``, never
  ``eval``); a JSON list of numbers (TheoremQA's ``"[1, 2]"``) is an answer, not aliases;
* a multiple-choice gold written in another case or as the option's text becomes its key;
  keys stay as the file gives them (``"1"``-``"4"`` in ``arc_challenge``, and ``"id"``, a real
  fourth option key in ``tablemwp_multiple_choice``);
* items that cannot be scored (``math``: null answers; ``mbpp``: no tests) are kept, so
  positions and counts match the file, and marked ``extra["unscorable"] = reason``; scorers
  give them 0 and ``unscorable_items`` lists them, so they are reported rather than hidden.

``name`` versus ``dataset`` is read by the core reader; ids that repeat (``math``, ``blend``) are
harmless because results are keyed by position and id (``Example.key``); ``duplicate_ids``
counts them.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from moco_core.types import Dataset, Example

UNSCORABLE = "unscorable"
_GOLD_TASK_TYPES = frozenset({"multiple_choice", "exact_match", "f1_match", "general_verifier"})
_SPLITS = ("dev", "test")


def parse_aliases(answer: Any) -> Any:
    """A list of aliases from a JSON-list string of strings; any other answer unchanged."""
    if not isinstance(answer, str):
        return answer
    text = answer.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return answer
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return answer
    if isinstance(value, list) and value and all(isinstance(alias, str) for alias in value):
        return value
    return answer


def _choice_key(answer: Any, choices: dict[str, str]) -> Any:
    """The option key a multiple-choice gold means: the key itself, in any case, or its text."""
    if answer is None:
        return None
    gold = str(answer).strip()
    if gold in choices:
        return gold
    by_upper = {key.upper(): key for key in choices}
    if gold.upper() in by_upper:
        return by_upper[gold.upper()]
    by_text = [key for key, text in choices.items() if " ".join(text.split()).lower() == " ".join(gold.split()).lower()]
    return by_text[0] if len(by_text) == 1 else gold


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return all(_blank(item) for item in value)
    return value is None or (isinstance(value, dict) and not value)


def unscorable_reason(example: Example, task_type: str | None = None) -> str | None:
    """Why ``example`` cannot be scored (no gold, gold not an option, no tests), or None."""
    task_type = task_type or example.task_type
    if task_type == "coding":
        tests = example.extra.get("test", example.extra.get("tests"))
        return "no tests" if _blank(tests) else None
    if task_type not in _GOLD_TASK_TYPES:
        return None
    if _blank(example.answer):
        return "no gold answer"
    if task_type == "multiple_choice" and example.choices and str(example.answer) not in example.choices:
        return f"gold {example.answer!r} is not an option key"
    return None


def normalize_example(example: Example, task_type: str | None = None) -> Example:
    """Repair one example in place (idempotent) and return it."""
    task_type = task_type or example.task_type
    if task_type == "multiple_choice" and example.choices:
        example.answer = _choice_key(example.answer, example.choices)
    elif task_type in _GOLD_TASK_TYPES:
        example.answer = parse_aliases(example.answer)
    reason = unscorable_reason(example, task_type)
    if reason is None:
        example.extra.pop(UNSCORABLE, None)
    else:
        example.extra[UNSCORABLE] = reason
    return example


def normalize_items(dataset: Dataset) -> Dataset:
    """Repair every example of ``dataset`` in place (see the module docstring) and return it."""
    for example in dataset.dev + dataset.test:
        normalize_example(example, dataset.task_type)
    return dataset


def is_unscorable(example: Example) -> bool:
    """Whether ``example`` was marked unscorable: scorers give it 0 without looking further."""
    return bool(example.extra.get(UNSCORABLE))


def unscorable_items(dataset: Dataset) -> list[tuple[str, Example]]:
    """(split, example) for every unscorable item, in file order."""
    return [(split, ex) for split in _SPLITS for ex in getattr(dataset, split) if is_unscorable(ex)]


def count_unscorable(dataset: Dataset) -> dict[str, int]:
    """Unscorable items per split, e.g. ``{"dev": 7, "test": 5}`` for ``math``."""
    return {split: sum(is_unscorable(ex) for ex in getattr(dataset, split)) for split in _SPLITS}


def duplicate_ids(dataset: Dataset) -> dict[str, int]:
    """Per split, how many items share their id with an earlier item of that split."""
    counts = {}
    for split in _SPLITS:
        seen = Counter(ex.id for ex in getattr(dataset, split))
        counts[split] = sum(n - 1 for n in seen.values())
    return counts
