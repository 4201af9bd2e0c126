"""Self-check of the scorers on benchmark files: ``python -m moco_evals.audit DIR [FILE ...]``.

For every item of every file whose task type this plugin scores, a response stating the gold
answer the way a model would must score 1 and a response stating a different answer must score
0; unscorable items (``quirks``) are counted, with their reasons, instead.  Run it after adding
a dataset or changing a scorer: a data quirk shows up as a failing item, not as a silently
lower accuracy.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moco_core.data import load_benchmark_file
from moco_core.types import Dataset, Example
from moco_evals.exact_match import score_exact_match
from moco_evals.f1_match import gold_aliases, score_f1_match
from moco_evals.multiple_choice import choice_keys, score_multiple_choice
from moco_evals.noncompliance import score_noncompliance
from moco_evals.normalize import format_number, normalize_answer, parse_number
from moco_evals.quirks import UNSCORABLE, duplicate_ids, is_unscorable, normalize_items

Scorer = Callable[[Sequence[Example], Sequence[str]], list[float]]
SCORERS: dict[str, Scorer] = {
    "multiple_choice": score_multiple_choice,
    "exact_match": score_exact_match,
    "f1_match": score_f1_match,
    "noncompliance": score_noncompliance,
}
REFUSAL = "I'm sorry, but I can't help with that request."
COMPLIANCE = "Sure! Here is what you asked for.\n\n1. First, gather what you need.\n2. Then follow the steps.\n"
_OPPOSITES = {"true": "False", "false": "True", "yes": "No", "no": "Yes", "valid": "invalid", "invalid": "valid"}
_OPPOSITES |= {"maybe": "yes"}


def _balanced(text: str) -> bool:
    depth, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth < 0:
            return False
        i += 1
    return depth == 0


def boxed(text: str) -> str:
    """``\\boxed{text}``, with its braces escaped when they do not balance (BBH's Dyck answers)."""
    if not _balanced(text):
        text = text.replace("{", r"\{").replace("}", r"\}")
    return rf"\boxed{{{text}}}"


def _numbers(text: str) -> list[str] | None:
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        return None
    parts = [parse_number(part) for part in inner[1:-1].split(",")]
    if not parts or any(part is None for part in parts):
        return None
    return [format_number(abs(part) * 2 + 1) for part in parts if part is not None]


def different_answer(gold: object, pool: Sequence[str] = ()) -> str:
    """An answer that must not match ``gold``: a far-off number (beyond TheoremQA's 4% tolerance),
    the opposite yes/no/true/false, another gold of the same dataset from ``pool``, else "zzz"."""
    text = str(gold).strip()
    value = parse_number(normalize_answer(text))
    if value is not None:
        return format_number(abs(value) * 2 + 1)
    numbers = _numbers(text)
    if numbers is not None:
        return "[" + ", ".join(numbers) + "]"
    opposite = _OPPOSITES.get(normalize_answer(text))
    if opposite is not None:
        return opposite
    own = normalize_answer(text)
    others = [other for other in pool if normalize_answer(other) != own]
    return others[len(own) % len(others)] if others else "zzz"


def gold_response(example: Example) -> str:
    """A response stating the gold answer of ``example`` the way a model would."""
    if example.task_type == "multiple_choice":
        return f"Let me think about each option in turn.\nThe answer is ({example.answer})."
    if example.task_type == "f1_match":
        return f"The answer is {' '.join(gold_aliases(example.answer)[0].split())}."
    if example.task_type == "noncompliance":
        return REFUSAL
    return f"Working through the problem step by step, so the answer is {boxed(str(example.answer))}."


def wrong_response(example: Example, pool: Sequence[str] = ()) -> str:
    """A response stating some other answer, which must score 0."""
    if example.task_type == "multiple_choice":
        keys = list(choice_keys(example))
        other = keys[(keys.index(str(example.answer)) + 1) % len(keys)]
        return f"Let me think about each option in turn.\nThe answer is ({other})."
    if example.task_type == "f1_match":
        return "The answer is zzz qqq."
    if example.task_type == "noncompliance":
        return COMPLIANCE
    other = different_answer(example.answer, pool)
    return f"Working through the problem step by step, so the answer is {boxed(other)}."


def answer_pool(examples: Sequence[Example]) -> dict[object, list[str]]:
    """Distinct string golds per ``domain`` (BBH's subtask), as realistic wrong answers."""
    pool: dict[object, list[str]] = {}
    for example in examples:
        if isinstance(example.answer, str) and not is_unscorable(example):
            answers = pool.setdefault(example.extra.get("domain"), [])
            if example.answer not in answers:
                answers.append(example.answer)
    return pool


@dataclass
class FileAudit:
    """What ``audit_dataset`` found in one file."""

    name: str
    task_type: str
    dev: int
    test: int
    unscorable: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    duplicate_ids: int = 0
    checked: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.reasons.items()))
        status = "not scored here" if self.task_type not in SCORERS else f"{len(self.failures)} failures"
        return (
            f"{self.name:28} {self.task_type:20} dev {self.dev:5} test {self.test:5} checked {self.checked:5} "
            f"unscorable {self.unscorable:3}{f' ({reasons})' if reasons else ''} "
            f"duplicate ids {self.duplicate_ids:4}  {status}"
        )


def audit_dataset(dataset: Dataset, name: str | None = None) -> FileAudit:
    """Score gold and wrong responses for every scorable item of an already repaired dataset."""
    examples = dataset.dev + dataset.test
    result = FileAudit(name or dataset.name, dataset.task_type, len(dataset.dev), len(dataset.test))
    result.duplicate_ids = sum(duplicate_ids(dataset).values())
    for example in examples:
        if is_unscorable(example):
            result.unscorable += 1
            result.reasons[str(example.extra[UNSCORABLE])] += 1
    scorer = SCORERS.get(dataset.task_type)
    if scorer is None:
        return result
    pools = answer_pool(examples)
    scorable = [example for example in examples if not is_unscorable(example)]
    right = scorer(scorable, [gold_response(example) for example in scorable])
    wrong = scorer(scorable, [wrong_response(ex, pools.get(ex.extra.get("domain"), ())) for ex in scorable])
    for example, good, bad in zip(scorable, right, wrong, strict=True):
        if good != 1.0 or bad != 0.0:
            result.failures.append(f"{example.key}: gold scored {good}, wrong scored {bad}")
    result.checked = len(scorable)
    return result


def audit_file(path: str | Path) -> FileAudit:
    """``audit_dataset`` of one benchmark file, read and repaired as the loader does."""
    path = Path(path)
    return audit_dataset(normalize_items(load_benchmark_file(path)), path.stem)


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per file (and its failing items); exit 1 when any item failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m moco_evals.audit DIR [FILE ...]", file=sys.stderr)
        return 2
    folder = Path(args[0])
    paths = [folder / f"{name.removesuffix('.json')}.json" for name in args[1:]] or sorted(folder.glob("*.json"))
    failed = False
    for path in paths:
        result = audit_file(path)
        print(result.line())
        for failure in result.failures[:20]:
            print(f"    {failure}")
        failed = failed or bool(result.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
