"""The ``exact_match`` task type: find the final answer in free text and compare it to the gold.

Comparison runs the cheap checks in ``EQUIVALENCE_CHECKS`` on normalised strings first, then
TheoremQA's per-type rules, and only then symbolic equality (``math_equivalence``), which is
thousands of times slower, so a wrong numeric answer never reaches sympy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals.latex import last_boxed
from moco_evals.math_equivalence import math_equal, numeric_value
from moco_evals.normalize import (
    CONTINUATION_WORDS,
    SCALE_WORDS,
    assigned_variable,
    normalize_answer,
    parse_number,
)
from moco_evals.prompts import exact_match_prompt
from moco_evals.quirks import is_unscorable

THEOREMQA_TOLERANCE = 0.04

ANSWER_PHRASE = re.compile(r"(?i)\b(?:final\s+answer|answer)\b\**\s*(?:is\b|[:：=])\s*:?")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
_NUMBER_THEN_PROSE = re.compile(
    r"\s*(\\?\$?\s*[-+]?\d(?:[\d,]*\d)?(?:\.\d+)?(?:/\d+)?)\s*(,\s*|\s+)([A-Za-z]+)\b.*", re.DOTALL
)
# A word answer ends at its first comma or explanation: "No, because the premise is false" is "No".
# A comma ends it before a clause, or after a yes/no word; a comma inside a name list does not.
_WORD_ANSWER_END = re.compile(
    r"(?i)\s+(?:because|since)\b|[!?;](?=\s|$)|,\s+(?=(?:because|since|as|so|but|which|who|that|this|it|"
    r"its|it's|i|we|given|therefore|hence|meaning|although|though|while|not|and\s+(?:it|this|that|so)\b)\b)"
    r"|(?<=^yes),|(?<=^no),|(?<=^true),|(?<=^false),"
)
# GSM8K's own answer line: "#### 72".
_GSM8K_MARKER = re.compile(r"(?m)^\s*#{4}[ \t]*(\S.*)$")
# A short response (at most this many words, on one line) may be the answer itself: "True", "yes".
SHORT_RESPONSE_WORDS = 8
# Two numbers joined as alternatives or a range ("14 or 15", "5 to 6") state no single answer.
_ALTERNATIVES = re.compile(r"(?i)\d\s*(?:or|to|and|-|–)\s*\$?-?\d")
_NUMBER = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_OPTION_WITH_TEXT = re.compile(r"\(?([a-z])\)[:,]?\s")
# Where an explanation starts after an answer: "x = 5, since 2x = 10", "5 (because 2x = 10)".
_EXPLANATION = re.compile(
    r"(?i)(?:,\s*|\s*\(\s*|\s+)(?:since|because|as|given|where|which|so|thus|hence|therefore|from)\b|;\s"
)
# The last number of a response, for the flexible metric (lm-eval's gsm8k "flexible-extract").
_LAST_NUMBER = re.compile(r"-?[$€£]?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_TRUE_WORDS = frozenset({"true", "yes", "correct", "right", "t", "y"})
_FALSE_WORDS = frozenset({"false", "no", "incorrect", "wrong", "f", "n"})


def _answer_fragment(text: str) -> str:
    """The answer itself from the text after an answer phrase: one line, one sentence.

    A number followed by prose is the number ("1,000, which is plenty"), scaled by a scale word
    ("3 million"), but a number continued by "or", "times", "squared" ... is no final number and
    the fragment is kept whole; a word answer ends at its first comma or "because"/"since".  An
    equation chain keeps the value after its last "=", before any explanation: "x = 5, since
    2x = 10" is 5.
    """
    fragment = text.lstrip(" \t\n*_").split("\n", 1)[0]
    fragment = _SENTENCE_END.split(fragment, 1)[0]
    if "=" in fragment:
        fragment = _EXPLANATION.split(fragment, 1)[0].rsplit("=", 1)[-1]
    prose = _NUMBER_THEN_PROSE.fullmatch(fragment)
    if prose:
        word = prose.group(3).lower()
        if word in SCALE_WORDS:
            return f"{prose.group(1)} {word}"
        if word in CONTINUATION_WORDS and not prose.group(2).strip():
            return fragment.strip()
        return prose.group(1)
    fragment = fragment.strip()
    if fragment[:1].isalpha():
        fragment = _WORD_ANSWER_END.split(fragment, 1)[0].strip()
    return fragment


def _short_response_answer(text: str) -> str | None:
    """The answer of a response that is one short line (at most ``SHORT_RESPONSE_WORDS`` words):
    its last number, unless two numbers are offered as alternatives, else the whole line."""
    line = text.strip()
    if "\n" in line or len(line.split()) > SHORT_RESPONSE_WORDS:
        return None
    if line.rstrip(".,;:").rsplit(None, 1)[-1].lower() in CONTINUATION_WORDS:
        return None
    numbers = _NUMBER.findall(line)
    if numbers:
        return None if _ALTERNATIVES.search(line) else numbers[-1]
    line = line.rstrip(".!?;:,*` ").lstrip("*` ")
    return line or None


def extract_final_answer(text: str) -> str | None:
    """The raw final answer stated in ``text``, or None when it states none.

    In order: the last balanced ``\\boxed{}``/``\\fbox{}``; the last "Final answer:",
    "The answer is" or "answer:"; for a response of one short line only, its last number or
    else the whole line ("True", "yes").  A long response with neither box nor answer phrase
    (often a truncated one) states no answer.
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
    phrases = list(ANSWER_PHRASE.finditer(text))
    for phrase in reversed(phrases):
        fragment = _answer_fragment(text[phrase.end() : phrase.end() + 2000])
        if fragment:
            return fragment
    marked = _GSM8K_MARKER.findall(text)
    if marked:
        return _answer_fragment(marked[-1]) or None
    return _short_response_answer(text)


def _same_text(prediction: str, gold: str) -> bool:
    return prediction == gold or prediction.replace(" ", "") == gold.replace(" ", "")


def _close(prediction: Fraction, gold: Fraction, tolerance: float) -> bool:
    if prediction == gold:
        return True
    try:
        return math.isclose(float(prediction), float(gold), rel_tol=tolerance, abs_tol=0.0)
    except OverflowError:
        return False


def _same_number(prediction: str, gold: str) -> bool:
    """Equal values; a relative tolerance of 1e-6 absorbs rounding only for a non-integer gold."""
    left, right = parse_number(prediction), parse_number(gold)
    if left is None or right is None:
        return False
    if right.denominator == 1:
        return left == right
    return _close(left, right, 1e-6)


def _same_option_letter(prediction: str, gold: str) -> bool:
    """A gold option letter ("b") stated with its text: "(b) brand-new drinking motorcycle"."""
    if len(gold) != 1 or not gold.isalpha():
        return False
    stated = _OPTION_WITH_TEXT.match(prediction)
    return stated is not None and stated.group(1) == gold


EQUIVALENCE_CHECKS: list[Callable[[str, str], bool]] = [_same_text, _same_number, _same_option_letter]


def _as_bool(text: str) -> bool | None:
    if text in _TRUE_WORDS:
        return True
    return False if text in _FALSE_WORDS else None


def _value(raw: str, normalized: str) -> Fraction | float | None:
    """A number from plain text, else from a closed form such as ``\\frac{\\pi}{6}`` (math-verify)."""
    value = parse_number(normalized)
    return value if value is not None else numeric_value(raw.strip())


def _number_list(text: str) -> list[Fraction] | None:
    inner = text.strip()
    if inner[:1] + inner[-1:] in ("[]", "()"):
        inner = inner[1:-1]
    parts = [parse_number(part) for part in inner.split(",")]
    numbers = [part for part in parts if part is not None]
    return numbers if len(numbers) == len(parts) else None


def _typed_match(raw: str, prediction: str, gold: str, answer_type: str) -> bool | None:
    """TheoremQA's comparison by answer type, or None to fall back to the generic checks.

    Its official scorer accepts floats within 4% of the gold (``THEOREMQA_TOLERANCE``) and
    compares number lists sorted; booleans may be stated as yes/no.
    """
    if answer_type == "bool":
        stated, expected = _as_bool(prediction), _as_bool(gold)
        return None if stated is None or expected is None else stated == expected
    if answer_type in ("float", "integer"):
        expected, stated = parse_number(gold), _value(raw, prediction)
        if expected is None or stated is None:
            return None
        tolerance = THEOREMQA_TOLERANCE if answer_type == "float" else 1e-9
        return _close(Fraction(stated), expected, tolerance)
    if answer_type.startswith("list"):
        expected_list, stated_list = _number_list(gold), _number_list(prediction)
        if expected_list is None or stated_list is None:
            return None
        tolerance = THEOREMQA_TOLERANCE if "float" in answer_type else 1e-9
        pairs = zip(sorted(stated_list), sorted(expected_list), strict=False)
        return len(stated_list) == len(expected_list) and all(_close(p, g, tolerance) for p, g in pairs)
    return None


def answers_match(prediction: str | None, gold: Any, answer_type: str | None = None) -> bool:
    """Whether an extracted answer equals the gold answer (any alias when gold is a list).

    Cheap checks first: normalised strings, exact numbers, an option letter with its text;
    then the TheoremQA ``answer_type`` rules; last, symbolic equality (math-verify), only
    when the gold is a formula: against a plain-number gold only a plain number (fractions and
    decimals included) is an answer, so restating the question's expression
    (``\\sqrt[4]{12960000}`` for 60, ``\\dbinom{25}{2}`` for 300) earns nothing.  A gold of None
    never matches.
    """
    if prediction is None or gold is None:
        return False
    if isinstance(gold, (list, tuple)):
        return any(answers_match(prediction, alias, answer_type) for alias in gold)
    gold_text = str(gold)
    gold_variable = assigned_variable(gold_text)
    if gold_variable is not None and assigned_variable(prediction) not in (None, gold_variable):
        return False
    normalized_gold = normalize_answer(gold_text)
    if not normalized_gold:
        return False
    normalized_prediction = normalize_answer(prediction)
    if any(check(normalized_prediction, normalized_gold) for check in EQUIVALENCE_CHECKS):
        return True
    if answer_type:
        verdict = _typed_match(prediction, normalized_prediction, normalized_gold, answer_type)
        if verdict is not None:
            return verdict
    if parse_number(normalized_gold) is not None:
        return False
    return math_equal(prediction.strip(), gold_text.strip())


def extract_exact_match(example: Example, output: str) -> str | None:
    """The normalised final answer of ``output``: equal answers give equal strings (voting)."""
    answer = extract_final_answer(output)
    return None if answer is None else normalize_answer(answer)


def example_matches(example: Example, output: str) -> bool:
    """Whether ``output`` states the gold answer of ``example``; an unscorable item never does."""
    if is_unscorable(example):
        return False
    answer_type = example.extra.get("answer_type")
    typed = answer_type if isinstance(answer_type, str) else None
    return answers_match(extract_final_answer(output), example.answer, typed)


def score_exact_match(examples: Sequence[Example], outputs: Sequence[str], options: object = None) -> list[float]:
    """1.0 where the output's final answer matches the example's gold answer, else 0.0."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    return [float(example_matches(example, output)) for example, output in zip(examples, outputs, strict=True)]


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (thousands separators and a currency sign allowed)."""
    numbers = _LAST_NUMBER.findall(text or "")
    return numbers[-1].replace("$", "").replace("€", "").replace("£", "").replace(" ", "") if numbers else None


def flexible_match(example: Example, output: str) -> bool:
    """lm-eval's flexible gsm8k filter: the response's last number equals a numeric gold.

    Only for items whose gold is a plain number; a closing sentence such as "So, John can make
    90 small bags" then counts even without a stated final answer.
    """
    if is_unscorable(example) or not _numeric_gold(example):
        return False
    gold = parse_number(normalize_answer(example.answer))
    number = last_number(output)
    return gold is not None and number is not None and parse_number(normalize_answer(number)) == gold


def _numeric_gold(example: Example) -> bool:
    answer = example.answer
    return isinstance(answer, (str, int, float)) and parse_number(normalize_answer(answer)) is not None


def extra_exact_match_metrics(
    examples: Sequence[Example], outputs: Sequence[str], options: object = None
) -> list[dict[str, float]]:
    """``flexible_accuracy`` beside the strict score: for a numeric gold, whether the response's
    last number equals it (lm-eval's flexible filter); any other item keeps its strict score, so
    the mean covers every item."""
    return [
        {
            "flexible_accuracy": float(
                flexible_match(example, output) if _numeric_gold(example) else example_matches(example, output)
            )
        }
        for example, output in zip(examples, outputs, strict=True)
    ]


def scorer_spec() -> ScorerSpec:
    """The ``exact_match`` task type: boxed final answer, normalised or symbolic comparison."""
    return ScorerSpec(
        task_type="exact_match",
        prompt=exact_match_prompt,
        extract=extract_exact_match,
        score=score_exact_match,
        metric="accuracy",
        extra_metrics=extra_exact_match_metrics,
    )
