"""Every item of every shared benchmark file through its scorer: the gold stated the way a model
would scores 1, another answer scores 0, and the unscorable items are exactly the known ones.

Reward-model, coding and diversity files are scored by model- or sandbox-based scorers tested
elsewhere; here they are only checked for shape and unscorable counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import pytest

from moco_core.data import load_benchmark_file
from moco_core.types import Dataset, Example
from moco_evals.audit import answer_pool, boxed, different_answer, main
from moco_evals.exact_match import score_exact_match
from moco_evals.f1_match import gold_aliases, score_f1_match
from moco_evals.math_equivalence import looks_mathematical
from moco_evals.multiple_choice import extract_choice, score_multiple_choice
from moco_evals.noncompliance import HUMANIZING, INCOMPLETE, INDETERMINATE, SAFETY, UNSUPPORTED, score_noncompliance
from moco_evals.normalize import format_number, normalize_answer, parse_number
from moco_evals.prompts import multiple_choice_prompt
from moco_evals.quirks import count_unscorable, duplicate_ids, is_unscorable, normalize_items

MC, EM, F1, NC = "multiple_choice", "exact_match", "f1_match", "noncompliance"
# file: task type, dev size, test size, unscorable items per split
EXPECTED: dict[str, tuple[str, int, int, dict[str, int]]] = {
    "agieval": (MC, 1156, 1156, {}),
    "agieval_tiny": (MC, 40, 40, {}),
    "alpacaeval": ("reward_model", 2000, 1000, {}),
    "arc_challenge": (MC, 299, 1172, {}),
    "bbh": (EM, 1000, 1000, {}),
    "blend": (MC, 1000, 1000, {}),
    "coconot": (NC, 1000, 1000, {}),
    "culturalbench_hard": (MC, 613, 613, {}),
    "culturebench": (EM, 2454, 2454, {}),
    "gpqa_diamond": (MC, 99, 99, {}),
    "gpqa_extended": (MC, 273, 273, {}),
    "gpqa_main": (MC, 224, 224, {}),
    "gsm8k": (EM, 200, 1000, {}),
    "human_interest": ("reward_model", 400, 400, {}),
    "human_interest_tiny": ("reward_model", 58, 112, {}),
    "humaneval": ("coding", 50, 114, {}),
    "infinite_chat_diversity": ("generation_diversity", 26, 25, {}),
    "kaleidoscope": (MC, 1000, 1000, {}),
    "math": (EM, 956, 956, {"dev": 7, "test": 5}),
    "mbpp": ("coding", 487, 487, {"test": 2}),
    "medmcqa": (MC, 2091, 2092, {}),
    "medqa": (MC, 636, 637, {}),
    "mmlu_redux": (MC, 1000, 1000, {}),
    "popqa": (F1, 1000, 1000, {}),
    "pubmedqa": (EM, 500, 500, {}),
    "sciencemeter": (MC, 1000, 1000, {}),
    "sciriff": (EM, 114, 139, {}),
    "tablemwp_free_text": (EM, 375, 376, {}),
    "tablemwp_multiple_choice": (MC, 124, 125, {}),
    "theoremqa": (EM, 400, 400, {}),
    "truthfulqa": (MC, 200, 617, {}),
    "wikidyk": (F1, 1000, 765, {}),
}
FILES_OF = {kind: sorted(k for k, v in EXPECTED.items() if v[0] == kind) for kind in (MC, EM, F1, NC)}


@cache
def _load(path: Path) -> Dataset:
    return normalize_items(load_benchmark_file(path))


def load(bench_dir: Path, name: str) -> Dataset:
    return _load(bench_dir / f"{name}.json")


def scorable(dataset: Dataset) -> list[Example]:
    return [example for example in dataset.dev + dataset.test if not is_unscorable(example)]


def check(
    scorer: Callable[[Sequence[Example], Sequence[str]], list[float]],
    cases: list[tuple[Example, list[str], list[str]]],
) -> int:
    """Score every (example, right responses, wrong responses) in one batch; assert 1 / 0."""
    examples = [ex for ex, right, wrong in cases for _ in right + wrong]
    outputs = [text for _, right, wrong in cases for text in right + wrong]
    scores = iter(scorer(examples, outputs))
    failures = []
    for ex, right, wrong in cases:
        got = [next(scores) for _ in right + wrong]
        if got != [1.0] * len(right) + [0.0] * len(wrong):
            failures.append((ex.key, ex.answer, [(o, s) for o, s in zip(right + wrong, got, strict=True)]))
    assert not failures, f"{len(failures)} items failed, first: {failures[:3]}"
    return len(cases)


def test_the_folder_holds_exactly_the_known_files(bench_dir: Path) -> None:
    assert sorted(path.stem for path in bench_dir.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_and_unscorable_items(name: str, bench_dir: Path) -> None:
    task_type, dev, test, unscorable = EXPECTED[name]
    dataset = load(bench_dir, name)
    assert (dataset.task_type, len(dataset.dev), len(dataset.test)) == (task_type, dev, test)
    assert count_unscorable(dataset) == {"dev": unscorable.get("dev", 0), "test": unscorable.get("test", 0)}
    print(f"{name}: {dev + test} items, {sum(unscorable.values())} unscorable, {duplicate_ids(dataset)} repeated ids")


def test_unscorable_items_score_zero_and_never_crash(bench_dir: Path) -> None:
    math = [ex for ex in load(bench_dir, "math").dev + load(bench_dir, "math").test if is_unscorable(ex)]
    assert len(math) == 12 and all(ex.answer is None and ex.extra["unscorable"] == "no gold answer" for ex in math)
    outputs = [r"\boxed{\frac{\sqrt{3}}{2}}", r"\boxed{None}", "The answer is null.", ""] * 3
    assert score_exact_match(math, outputs) == [0.0] * 12
    mbpp = [ex for ex in load(bench_dir, "mbpp").test if is_unscorable(ex)]
    assert [ex.extra["unscorable"] for ex in mbpp] == ["no tests", "no tests"]
    assert [ex.index for ex in mbpp] == [39, 480]


def _other_key(example: Example) -> str:
    keys = list(example.choices or {})
    return keys[(keys.index(str(example.answer)) + 1) % len(keys)]


@pytest.mark.parametrize("name", FILES_OF[MC])
def test_multiple_choice_items(name: str, bench_dir: Path) -> None:
    cases = []
    for ex in scorable(load(bench_dir, name)):
        gold, other = str(ex.answer), _other_key(ex)
        assert ex.choices is not None and gold in ex.choices, ex.key
        right = [
            f"Let me think step by step.\nEach option is checked against the facts.\nThe answer is ({gold}).",
            f"Option ({other}) looks plausible at first, but it fails. The answer is **{gold}**.",
            f"The answer is ({other}). Wait, that is wrong. Final answer: {gold}",
            f"Reasoning...\n\n$\\boxed{{{gold}}}$",
            f"{gold}) {ex.choices[gold]}",
            gold,
            f"Answer: {gold}",
        ]
        wrong = [
            f"Let me think step by step.\nThe answer is ({other}).",
            f"({gold}) looks plausible at first, but it fails. The answer is **{other}**.",
            f"Answer: {other}",
            f"\\boxed{{{other}}}",
        ]
        cases.append((ex, right, wrong))
    print(f"{name}: {check(score_multiple_choice, cases)} items checked")


def _ambiguous_text(example: Example, gold: str) -> bool:
    """Whether stating the gold option's text cannot name one key: the same text twice, a text
    inside another, several lines, or a text that reads as a key ("c", "a*", "A is ...", "A_{0}=")."""
    options = example.choices or {}
    texts = [" ".join(text.lower().split()).strip(" .$") for text in options.values()]
    mine = texts[list(options).index(gold)]
    keys = "|".join(re.escape(key) for key in options)
    reads_as_key = any(re.match(rf"(?i)[(\[]?(?:{keys})(?![A-Za-z0-9])", text) for text in texts)
    return texts.count(mine) > 1 or any(mine in t for t in texts if t != mine) or "\n" in options[gold] or reads_as_key


@pytest.mark.parametrize("name", FILES_OF[MC])
def test_multiple_choice_option_text_is_understood(name: str, bench_dir: Path) -> None:
    failures, checked = [], 0
    for ex in scorable(load(bench_dir, name)):
        gold = str(ex.answer)
        if _ambiguous_text(ex, gold):
            continue
        checked += 1
        if extract_choice(ex, f"The answer is {(ex.choices or {})[gold]}") != gold:
            failures.append(ex.key)
    assert not failures, failures[:10]
    assert checked > 0
    print(f"{name}: option text understood for {checked} items")


def _number_forms(gold: str) -> list[str]:
    """Other spellings of a numeric gold that a model might box or state."""
    value = parse_number(normalize_answer(gold))
    if value is None:
        return []
    plain = format_number(value)
    forms = [rf"\boxed{{{plain}}}"]
    if value.denominator == 1:
        forms += [rf"\boxed{{{plain}.0}}", f"The answer is {value.numerator:,}."]
    else:
        forms.append(rf"\boxed{{\frac{{{value.numerator}}}{{{value.denominator}}}}}")
    return forms


@pytest.mark.parametrize("name", FILES_OF[EM])
def test_exact_match_items(name: str, bench_dir: Path) -> None:
    examples = scorable(load(bench_dir, name))
    pools = answer_pool(examples) if name != "math" else {}
    cases = []
    for ex in examples:
        gold = str(ex.answer)
        wrong_value = different_answer(gold, pools.get(ex.extra.get("domain"), ()))
        right = [
            f"Let me work through it.\nStep 1: read the question.\nSo the answer is {boxed(gold)}.",
            f"First guess {boxed(wrong_value)}, but checking again: {boxed(gold)}",
            *_number_forms(gold),
        ]
        if "\n" not in gold and _balanced_enough(gold):
            right.append(f"Putting it together.\nFinal answer: {gold}")
        if ex.extra.get("answer_type") == "bool":
            right.append(rf"\boxed{{{'Yes' if gold == 'True' else 'No'}}}")
        wrong = [
            f"Let me work through it.\nSo the answer is {boxed(wrong_value)}.",
            f"First guess {boxed(gold)}, but checking again: {boxed(wrong_value)}",
            f"The answer is {wrong_value}.",
        ]
        cases.append((ex, right, wrong))
    print(f"{name}: {check(score_exact_match, cases)} items checked")


def _balanced_enough(text: str) -> bool:
    return text.count("{") == text.count("}")


@pytest.mark.parametrize("name", FILES_OF[F1])
def test_f1_items(name: str, bench_dir: Path) -> None:
    cases = []
    for ex in scorable(load(bench_dir, name)):
        aliases = [" ".join(alias.split()) for alias in gold_aliases(ex.answer)]
        right = [
            f"The answer is {aliases[0]}.",
            f"Let me recall.\n**Final answer:** {aliases[0]}",
            f"The answer is {aliases[-1]}.",
            boxed(aliases[0]),
        ]
        wrong = ["The answer is zzz qqq.", r"\boxed{zzz}", f"I first thought {aliases[0]}, but the answer is zzz."]
        cases.append((ex, right, wrong))
    print(f"{name}: {check(score_f1_match, cases)} items checked")


def test_popqa_aliases_are_parsed_lists(bench_dir: Path) -> None:
    examples = scorable(load(bench_dir, "popqa"))
    assert all(
        isinstance(ex.answer, list) and ex.answer and all(isinstance(a, str) for a in ex.answer) for ex in examples
    )
    assert max(len(ex.answer) for ex in examples) > 10


DECLINES = {
    SAFETY: "I'm sorry, but I can't help with that. Sharing it would be harmful.",
    INCOMPLETE: "Could you clarify which one you mean? The question is missing some details.",
    UNSUPPORTED: "As an AI, I don't have the ability to browse the internet, taste food or show videos.",
    INDETERMINATE: "There's no single answer to this: it is subjective and depends on personal taste.",
    HUMANIZING: "I don't have personal opinions or feelings, but here are some perspectives people hold.",
}
COMPLIES = [
    "Sure! Here is what you asked for.\n\n1. First, gather the ingredients.\n2. Then follow the steps.",
    "Absolutely. The quarterback was Tom Brady, who led the team to victory that season.",
    "I'm sorry to hear that you're curious about this! Here are the details you wanted: it is 42.",
    "I can't wait to help! Here is the full article, written exactly as requested.",
]


def test_coconot_items(bench_dir: Path) -> None:
    cases = []
    for ex in scorable(load(bench_dir, "coconot")):
        category = ex.extra["category"]
        assert category in DECLINES, ex.key
        right = [
            DECLINES[category],
            "I'm sorry, but I cannot provide that.",
            "As an AI language model, I won't do that.",
        ]
        cases.append((ex, right, COMPLIES))
    print(f"coconot: {check(score_noncompliance, cases)} items checked")


def test_audit_command_reports_counts(bench_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(bench_dir), "math", "mbpp", "agieval_tiny"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "checked  1900 unscorable  12 (no gold answer: 12)" in lines[0]
    assert "unscorable   2 (no tests: 2)" in lines[1] and "not scored here" in lines[1]
    assert lines[2].endswith("0 failures")


def test_math_formulas_compare_symbolically(bench_dir: Path) -> None:
    """Formula golds (polynomials, radicals, pi): ``gold + 0`` is the same answer and ``gold + 1``
    is not, which only math-verify can tell, so this exercises the symbolic step on real golds."""
    examples = [
        ex
        for ex in scorable(load(bench_dir, "math"))
        if parse_number(normalize_answer(ex.answer)) is None
        and looks_mathematical(ex.answer)
        and len(ex.answer.strip()) > 1
        and not re.search(r",|\\begin|=|\\text|\\cup|\\infty", ex.answer)
    ]
    assert len(examples) > 100
    cases = [(ex, [rf"\boxed{{{ex.answer} + 0}}"], [rf"\boxed{{{ex.answer} + 1}}"]) for ex in examples]
    print(f"math: {check(score_exact_match, cases)} formulas compared symbolically")


@pytest.mark.parametrize("name", FILES_OF[MC])
def test_multiple_choice_prompts_list_every_option(name: str, bench_dir: Path) -> None:
    for ex in scorable(load(bench_dir, name)):
        prompt = multiple_choice_prompt(ex)
        assert prompt.startswith(ex.question.strip())
        for key, text in (ex.choices or {}).items():
            assert f"\n{key}) {text}" in prompt
        assert prompt.endswith("as 'The answer is (X)'.")
