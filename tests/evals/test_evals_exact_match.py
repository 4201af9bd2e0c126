"""Final-answer extraction, normalisation and numeric equality for ``exact_match``."""

from __future__ import annotations

from fractions import Fraction

import pytest

from moco_core.types import Example
from moco_evals.exact_match import (
    answers_match,
    extract_exact_match,
    extract_final_answer,
    score_exact_match,
    scorer_spec,
)
from moco_evals.latex import boxed_spans, last_boxed, unwrap_text_commands
from moco_evals.normalize import format_number, normalize_answer, parse_number


def example(answer: object) -> Example:
    return Example(0, "q0", "How many?", answer, "exact_match")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"So the answer is \boxed{112}.", "112"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"$\boxed{\dfrac{\sqrt{3}}{2}}$", r"\dfrac{\sqrt{3}}{2}"),
        (r"\boxed{\{1, 2\}}", r"\{1, 2\}"),
        (r"first \boxed{3} then \boxed{4}", "4"),
        (r"\boxed{5} and a truncated \boxed{6", "5"),
        (r"\fbox{42}", "42"),
        (r"\boxed 7", "7"),
        (r"\boxed{x = 5}", "x = 5"),
        (r"\boxed{14 \times 8 = 112}", "112"),
        ("Final answer: 17", "17"),
        ("Final Answer: The final answer is $5$. I hope it is correct.", "$5$"),
        ("The answer is 1,600.", "1,600"),
        ("The answer is 1,000, which is plenty.", "1,000"),
        ("The answer is 112 dollars.", "112"),
        ("The answer is 14 * 8 = 112.", "112"),
        ("**Final Answer:** 9", "9"),
        ("answer: yes\nBecause it is.", "yes"),
        ("The answer is 3.5.", "3.5"),
        ("He has 3 apples and buys 5 more, so 8 in all.", None),
        ("He has 3 apples, so 8.", "8"),
        ("Total: 1,234,567 grains", "1,234,567"),
        ("#### 72", "72"),
        ("It costs -3 degrees", "-3"),
        ("COVID-19 cases", "19"),
        ("no numbers here", "no numbers here"),
        ("There are no numbers anywhere in this rather long reply.", None),
        ("", None),
        ("   ", None),
    ],
)
def test_extract_final_answer(text: str, expected: str | None) -> None:
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,000", "1000"),
        ("1{,}000", "1000"),
        (r"1\,000", "1000"),
        ("1000.00", "1000"),
        ("7.0", "7"),
        ("+5", "5"),
        ("$18", "18"),
        (r"\$18.50", "18.5"),
        ("$-3$", "-3"),
        ("−3", "-3"),
        ("50%", "50"),
        (r"50\%", "50"),
        (r"90^\circ", "90"),
        (r"90^{\circ}", "90"),
        (r"\text{Paris}", "paris"),
        (r"10 \text{ dollars}", "10"),
        ("112 dollars.", "112"),
        ("The Cat.", "cat"),
        ("an apple", "apple"),
        ("  Hello,   World!  ", "hello, world"),
        ("x = 5", "5"),
        (r"\frac{1}{2}", "0.5"),
        (r"\dfrac{3}{4}", "0.75"),
        (r"\tfrac12", "0.5"),
        (r"-\frac{1}{3}", "-1/3"),
        ("2/4", "0.5"),
        (".5", "0.5"),
        ("2 pi", "2 pi"),
        (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt{3}}{2}"),
        ("(1, 2)", "(1, 2)"),
        ("a", "a"),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "same"),
    [
        ("1/2", "0.5", True),
        (r"\frac{1}{2}", "0.5", True),
        (r"\dfrac{1}{2}", "1/2", True),
        (r"\frac{2}{4}", r"\frac{1}{2}", True),
        ("1,000", "1000", True),
        ("1000", 1000, True),
        ("1000", 1000.0, True),
        ("3.0000001", "3", False),
        ("3.0000001", "3.0", False),
        ("0.3333333", "1/3", True),
        ("2.0000001", "2.5", False),
        ("2.5000001", "2.5", True),
        ("3.01", "3", False),
        ("2880001", "2880000", False),
        ("2880000.4", "2880000", False),
        ("1000000.5", "1000000", False),
        ("0.000001", "0", False),
        ("0", "0.0", True),
        ("-3", "3", False),
        ("x=5", "5", True),
        ("y = 2x + 3", "y=2x+3", True),
        (r"\text{Paris}", "paris.", True),
        ("The Eiffel Tower", "eiffel tower", True),
        ("yes", "no", False),
        ("7", ["six", "7"], True),
        ("7", None, False),
        (None, "7", False),
        ("", "", False),
        ("1e400", "1", False),
    ],
)
def test_answers_match(prediction: str | None, gold: object, same: bool) -> None:
    assert answers_match(prediction, gold) is same


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", Fraction(12)),
        ("-0.25", Fraction(-1, 4)),
        ("1,234.5", Fraction(24690, 20)),
        ("3/0", None),
        (r"\frac{1}{0}", None),
        (r"\frac{-1}{2}", Fraction(-1, 2)),
        (r"\frac{\frac{1}{2}}{2}", Fraction(1, 4)),
        (r"\frac{x}{2}", None),
        ("1e3", Fraction(1000)),
        ("2**10", None),
        ("__import__('os')", None),
        ("1" * 5000, None),
        ("12,34", None),
    ],
)
def test_parse_number_is_exact_and_never_evaluates(text: str, value: Fraction | None) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [(Fraction(5), "5"), (Fraction(1, 8), "0.125"), (Fraction(-3, 20), "-0.15"), (Fraction(1, 3), "1/3")],
)
def test_format_number(value: Fraction, text: str) -> None:
    assert format_number(value) == text


def test_boxed_helpers() -> None:
    text = r"a \boxed{1} b \boxed{\frac{1}{2}} c \boxed{oops"
    assert [content for _, content in boxed_spans(text)] == ["1", r"\frac{1}{2}"]
    assert last_boxed(text) == r"\frac{1}{2}"
    assert last_boxed("nothing") is None
    assert unwrap_text_commands(r"\text{a \textbf{b}} c") == "a b c"


def test_extract_gives_comparable_strings_for_voting() -> None:
    ex = example("0.5")
    outputs = [r"\boxed{\frac{1}{2}}", "The answer is 1/2.", "Final answer: 0.50", r"\boxed{\dfrac12}"]
    assert {extract_exact_match(ex, output) for output in outputs} == {"0.5"}
    assert extract_exact_match(ex, "I cannot say, as this long reply has no number at all.") is None


def test_score_batch() -> None:
    examples = [example("112"), example("1,600"), example(3), example(None)]
    outputs = [r"so \boxed{112}", "The answer is 1600.", r"\boxed{4}", r"\boxed{1}"]
    assert score_exact_match(examples, outputs) == [1.0, 1.0, 0.0, 0.0]


def test_score_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="1 examples but 2 outputs"):
        score_exact_match([example("1")], ["1", "2"])


@pytest.mark.parametrize(
    "output",
    ["\n" * 50_000, r"\boxed{" * 7_000, r"\text{" * 8_000, "answer: " * 6_000, "1," * 25_000, r"\frac{" * 8_000],
)
def test_degenerate_generations_score_zero(output: str) -> None:
    assert score_exact_match([example("7")], [output]) == [0.0]
    assert extract_exact_match(example("7"), output) != "7"


@pytest.mark.parametrize(
    ("output", "gold", "score"),
    [
        (r"Nested: \boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}", 1.0),
        (r"\boxed{\boxed{5}}", "5", 1.0),
        (r"\boxed{3} is wrong, \boxed{4} is wrong, \boxed{5} is it", "5", 1.0),
        (r"\boxed{5} first, then \boxed{3}", "5", 0.0),
        ("Final answer: 1,234,567", "1234567", 1.0),
        ("The answer is $1{,}000$.", "1000", 1.0),
        (r"\boxed{12.0}", "12", 1.0),
        (r"\boxed{12.50}", "12.5", 1.0),
        (r"\boxed{\$18.00}", "18", 1.0),
        (r"\boxed{18 \text{ dollars}}", "18", 1.0),
        (r"\boxed{25\%}", "25", 1.0),
        (r"\boxed{90^\circ}", "90", 1.0),
        (r"\boxed{\frac{1}{2}}", "0.5", 1.0),
        (r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
        ("The answer is 1/2.", r"\dfrac{1}{2}", 1.0),
        (r"\boxed{x = 5}", "5", 1.0),
        (r"\boxed{18x^3+8x^2}", "18x^3+8x^2", 1.0),
        (r"\boxed{8x^2 + 18x^3}", "18x^3+8x^2", 1.0),
        (r"\boxed{18x^3+8x}", "18x^3+8x^2", 0.0),
        (r"\boxed{(-\infty,-8)\cup(-8,\infty)}", r"(-\infty, -8) \cup (-8, \infty)", 1.0),
        (r"\boxed{(-\infty,-8]\cup(-8,\infty)}", r"(-\infty, -8) \cup (-8, \infty)", 0.0),
        (r"\boxed{\sqrt{40}}", r"2\sqrt{10}", 1.0),
        (r"\boxed{\pi/2}", r"\frac{\pi}{2}", 1.0),
        (r"\boxed{\frac{\pi}{3}}", r"\frac{\pi}{2}", 0.0),
        (r"\boxed{\begin{pmatrix}15\\10\end{pmatrix}}", r"\begin{pmatrix} 15 \\ 10 \end{pmatrix}", 1.0),
        (r"\boxed{3, 1}", "1,3", 1.0),
        (r"\boxed{3.54 \times 10^{-7}}", "3.54e-07", 1.0),
        ("The answer is (A).", "A", 1.0),
        ("The answer is (A) enormous brand-new German drinking motorcycle.", "A", 1.0),
        ("The answer is (B).", "A", 0.0),
        (r"\boxed{\text{(C)}}", "C", 1.0),
        ("The answer is valid.", "valid", 1.0),
        ("The answer is invalid.", "valid", 0.0),
        ("So the answer is: True", "True", 1.0),
        (r"\boxed{yes}", "yes", 1.0),
        (r"\boxed{maybe}", "yes", 0.0),
        (r"\boxed{\} ) \}}", "} ) }", 1.0),
        ("The answer is } ) }.", "} ) }", 1.0),
        ("The answer is ] }.", "} ) }", 0.0),
        ("The answer is CompareOrContrast.", "CompareOrContrast", 1.0),
        (r"\boxed{zzz}", "18x^3+8x^2", 0.0),
    ],
)
def test_tricky_answers(output: str, gold: str, score: float) -> None:
    assert score_exact_match([example(gold)], [output]) == [score]


def theoremqa(answer: str, answer_type: str) -> Example:
    return Example(0, "t", "?", answer, "exact_match", extra={"answer_type": answer_type})


@pytest.mark.parametrize(
    ("output", "gold", "answer_type", "score"),
    [
        (r"\boxed{True}", "True", "bool", 1.0),
        (r"\boxed{Yes}", "True", "bool", 1.0),
        (r"\boxed{no}", "False", "bool", 1.0),
        (r"\boxed{False}", "True", "bool", 0.0),
        (r"\boxed{0.67}", "0.6705", "float", 1.0),
        (r"\boxed{0.64}", "0.6705", "float", 0.0),
        (r"\boxed{\frac{\pi}{6}}", "0.5236", "float", 1.0),
        (r"\boxed{1900}", "1960.0", "float", 1.0),
        (r"\boxed{3.0}", "3", "integer", 1.0),
        (r"\boxed{3.4}", "3", "integer", 0.0),
        (r"\boxed{2^{24}}", "16777216", "integer", 0.0),  # an unevaluated expression for a plain number
        (r"\boxed{16,777,216}", "16777216", "integer", 1.0),
        (r"\boxed{[1, 2]}", "[1, 2]", "list of integer", 1.0),
        (r"\boxed{(1, 2)}", "[1, 2]", "list of integer", 1.0),
        (r"\boxed{[2, 1]}", "[1, 2]", "list of integer", 1.0),
        (r"\boxed{[1, 3]}", "[1, 2]", "list of integer", 0.0),
        (r"\boxed{[1, 2, 3]}", "[1, 2]", "list of integer", 0.0),
        (r"\boxed{[0.5, 0.667]}", "[0.5, 0.66667]", "list of float", 1.0),
        ("The answer is (b).", "(b)", "option", 1.0),
        ("The answer is (a).", "(b)", "option", 0.0),
    ],
)
def test_theoremqa_answer_types(output: str, gold: str, answer_type: str, score: float) -> None:
    assert score_exact_match([theoremqa(gold, answer_type)], [output]) == [score]


def test_unscorable_items_score_zero() -> None:
    marked = Example(0, "q", "?", "7", "exact_match", extra={"unscorable": "no gold answer"})
    assert score_exact_match([marked, example(None)], [r"\boxed{7}", r"\boxed{7}"]) == [0.0, 0.0]


def test_scientific_notation_parses() -> None:
    assert parse_number(r"3.54 \times 10^{-7}") == Fraction(354, 10**9)
    assert parse_number("2 x 10^3") == Fraction(2000)
    assert parse_number(r"-1.5\cdot 10^(2)") == Fraction(-150)
    assert normalize_answer(r"\{1, 2\}") == "{1, 2}"
    assert normalize_answer("(B)") == "b"


@pytest.mark.parametrize(
    ("output", "gold", "score"),
    [
        # Short unboxed answers: the whole one-line response is the answer.
        ("True", "True", 1.0),
        ("False.", "False", 1.0),
        ("True", "False", 0.0),
        ("yes", "yes", 1.0),
        ("No", "yes", 0.0),
        ("**maybe**", "maybe", 1.0),
        ("CompareOrContrast", "CompareOrContrast", 1.0),
        ("The answer is No, because the premise is false", "no", 1.0),
        ("The answer is yes, since it holds.", "yes", 1.0),
        ("The answer is Paris, which is the capital.", "Paris", 1.0),
        ("Final answer: rita, sue and bob poo", "rita, sue and bob poo", 1.0),
        # A number continued by more text is no final number; scale words scale it.
        (r"\boxed{5 or more}", "5", 0.0),
        (r"\boxed{3 million}", "3", 0.0),
        (r"\boxed{3 million}", "3000000", 1.0),
        (r"\boxed{3 million dollars}", "3,000,000", 1.0),
        (r"\boxed{5 hundred}", "5", 0.0),
        (r"\boxed{5 squared}", "5", 0.0),
        (r"\boxed{3 dozen}", "36", 1.0),
        (r"\boxed{10 thousand}", "10", 0.0),
        (r"\boxed{18 eggs}", "18", 1.0),
        (r"\boxed{12 km}", "12", 1.0),
        (r"\boxed{4 hours}", "4", 1.0),
        ("The answer is 5 or 6", "5", 0.0),
        ("The answer is 3 times 4, which is 12", "3", 0.0),
        ("The answer is 3 million.", "3000000", 1.0),
        ("The answer is 5 apples.", "5", 1.0),
        # Variable names must agree when both sides assign one.
        (r"\boxed{y=2}", "x = 2", 0.0),
        (r"\boxed{x=2}", "x = 2", 1.0),
        (r"\boxed{2}", "x = 2", 1.0),
        (r"\boxed{y = 2}", "2", 1.0),
        # No tolerance for an integer gold.
        (r"\boxed{1000000.5}", "1000000", 0.0),
        (r"\boxed{0.3333333}", r"\frac{1}{3}", 1.0),
        # The last-number fallback only for a short response, never for alternatives.
        ("Adding them up: 12 + 8 = 20, and then we still need to subtract", "20", 0.0),
        ("It's either 14 or 15.", "15", 0.0),
        ("So it is 12 + 8 = 20, and", "20", 0.0),
        ("It is 20.", "20", 1.0),
    ],
)
def test_reviewed_extraction_and_normalisation(output: str, gold: str, score: float) -> None:
    assert score_exact_match([example(gold)], [output]) == [score]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3 million", "3000000"),
        ("1.5 billion", "1500000000"),
        ("5 or more", "5 or more"),
        ("5 squared", "5 squared"),
        ("3 times", "3 times"),
        ("25 percent", "25"),
        ("7 square feet", "7"),
    ],
)
def test_unit_words_are_a_whitelist(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def theoremqa_option(gold: str) -> Example:
    return Example(0, "q0", "Which option?", gold, "exact_match", extra={"answer_type": "option"})


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (r"So the answer is \box{75}.", "75"),
        (r"\box{x^2 + 1}", "x^2 + 1"),
        ("The answer is x = 5, since 2x = 10.", "5"),
        ("The answer is 2 + 3 = 5.", "5"),
        ("The answer is 5 (because 2x = 10).", "5"),
        ("The answer is y = 7; indeed 2y = 14.", "7"),
    ],
)
def test_toolkit_boxes_and_equations_after_an_answer_phrase(output: str, expected: str) -> None:
    assert extract_final_answer(output) == expected


@pytest.mark.parametrize(
    ("output", "score"),
    [
        (r"the answer is (b): $2\theta^2$", 1.0),
        (r"the answer is (b), $2\theta^2$", 1.0),
        (r"The answer is (b) $2\theta^2$", 1.0),
        (r"the answer is (c): $0.5\theta^{-1}$", 0.0),
    ],
)
def test_option_letter_followed_by_a_colon_or_comma(output: str, score: float) -> None:
    assert score_exact_match([theoremqa_option("(b)")], [output]) == [score]


@pytest.mark.parametrize(
    ("output", "gold", "score"),
    [
        (r"the final answer is $\sqrt[4]{12960000}$", "60", 0.0),
        (r"\boxed{\dbinom{25}{2}}", "300", 0.0),
        (r"\boxed{6 \times 50}", "300", 0.0),
        (r"\boxed{300}", "300", 1.0),
        (r"\boxed{\frac{1}{2}}", "0.5", 1.0),
        (r"\boxed{-\dfrac{3}{4}}", "-0.75", 1.0),
        (r"\boxed{0.75}", r"\frac{3}{4}", 1.0),
        (r"\boxed{\sqrt{40}}", r"2\sqrt{10}", 1.0),
    ],
)
def test_a_plain_number_gold_credits_only_plain_numbers(output: str, gold: str, score: float) -> None:
    assert score_exact_match([example(gold)], [output]) == [score]


@pytest.mark.parametrize(
    ("output", "gold", "strict", "flexible"),
    [
        ("He has 3 bags left. So, John can make 90 small bags", "90", 0.0, 1.0),
        (r"\boxed{90} bags in total.", "90", 1.0, 1.0),
        ("The answer is 90. Check: 90 / 2 = 45.", "90", 1.0, 0.0),
        ("The total is $1,250.", "1250", 1.0, 1.0),
        ("It comes to 12 and then 7", "5", 0.0, 0.0),
        (r"\boxed{Paris}", "Paris", 1.0, 1.0),
        ("I think Paris is the answer, 2 times.", "Paris", 0.0, 0.0),
    ],
)
def test_flexible_metric_takes_the_last_number_beside_the_strict_score(
    output: str, gold: str, strict: float, flexible: float
) -> None:
    spec = scorer_spec()
    assert spec.score([example(gold)], [output]) == [strict]
    assert spec.extra_metrics is not None
    assert spec.extra_metrics([example(gold)], [output]) == [{"flexible_accuracy": flexible}]


def test_flexible_metric_never_credits_unscorable_items() -> None:
    marked = Example(0, "q", "?", "7", "exact_match", extra={"unscorable": "no gold answer"})
    spec = scorer_spec()
    assert spec.extra_metrics is not None
    assert spec.extra_metrics([marked, example(None)], ["7", "7"]) == [
        {"flexible_accuracy": 0.0},
        {"flexible_accuracy": 0.0},
    ]
