"""The ``exact_match`` task type: find the final answer in free text and compare it to the gold.

Comparison runs the checks in ``EQUIVALENCE_CHECKS`` on normalised strings; a symbolic
checker (math-verify / sympy) can be appended there without touching extraction or scoring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from moco_core.types import Example
from moco_evals.latex import last_boxed
from moco_evals.normalize import normalize_answer, parse_number

_ANSWER_PHRASE = re.compile(r"(?i)\b(?:final\s+answer|answer)\b\**\s*(?:is\b|[:：=])\s*:?")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_NUMBER_THEN_PROSE = re.compile(r"\s*(\\?\$?\s*[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?(?:/\d+)?)\s*(?:,\s*|\s+)[A-Za-z].*")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def _answer_fragment(text: str) -> str:
    """The answer itself from the text after an answer phrase: one line, one sentence."""
    fragment = text.lstrip(" \t\n*_").split("\n", 1)[0]
    fragment = _SENTENCE_END.split(fragment, 1)[0]
    if "=" in fragment:
        fragment = fragment.rsplit("=", 1)[1]
    prose = _NUMBER_THEN_PROSE.fullmatch(fragment)
    return prose.group(1) if prose else fragment.strip()


def extract_final_answer(text: str) -> str | None:
    """The raw final answer stated in ``text``, or None when it states none.

    In order: the last balanced ``\\boxed{}``/``\\fbox{}``; the last "Final answer:",
    "The answer is" or "answer:"; the last number in the text.
    """
    if not text or not text.strip():
        return None
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        if "=" in boxed and parse_number(normalize_answer(boxed)) is None:
            right = boxed.rsplit("=", 1)[1]
            if right.strip():
                return right.strip()
        return boxed.strip()
    phrases = list(_ANSWER_PHRASE.finditer(text))
    for phrase in reversed(phrases):
        fragment = _answer_fragment(text[phrase.end() : phrase.end() + 2000])
        if fragment:
            return fragment
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _same_text(prediction: str, gold: str) -> bool:
    return prediction == gold or prediction.replace(" ", "") == gold.replace(" ", "")


def _same_number(prediction: str, gold: str) -> bool:
    """Equal values; a relative tolerance of 1e-6 absorbs rounding unless both are integers."""
    left, right = parse_number(prediction), parse_number(gold)
    if left is None or right is None:
        return False
    if left == right or (left.denominator == 1 and right.denominator == 1):
        return left == right
    try:
        return math.isclose(float(left), float(right), rel_tol=1e-6, abs_tol=0.0)
    except OverflowError:
        return False


EQUIVALENCE_CHECKS: list[Callable[[str, str], bool]] = [_same_text, _same_number]


def answers_match(prediction: str | None, gold: Any) -> bool:
    """Whether an extracted answer equals the gold answer (any alias when gold is a list).

    Both sides are normalised first; a gold of None (an unscorable item) never matches.
    """
    if prediction is None or gold is None:
        return False
    if isinstance(gold, (list, tuple)):
        return any(answers_match(prediction, alias) for alias in gold)
    normalized_gold = normalize_answer(gold)
    if not normalized_gold:
        return False
    normalized_prediction = normalize_answer(prediction)
    return any(check(normalized_prediction, normalized_gold) for check in EQUIVALENCE_CHECKS)


def extract_exact_match(example: Example, output: str) -> str | None:
    """The normalised final answer of ``output``: equal answers give equal strings (voting)."""
    answer = extract_final_answer(output)
    return None if answer is None else normalize_answer(answer)


def score_exact_match(examples: Sequence[Example], outputs: Sequence[str], options: object = None) -> list[float]:
    """1.0 where the output's final answer matches the example's gold answer, else 0.0."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    pairs = zip(examples, outputs, strict=True)
    return [float(answers_match(extract_final_answer(output), example.answer)) for example, output in pairs]
