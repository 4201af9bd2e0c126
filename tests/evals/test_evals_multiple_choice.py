"""Choice extraction from free model text: formats, precedence, and words that are not keys."""

from __future__ import annotations

import pytest

from moco_core.types import Example
from moco_evals.multiple_choice import (
    choice_conflict,
    choice_keys,
    extract_choice,
    gold_key,
    score_multiple_choice,
    scorer_spec,
)

LETTERS = {"A": "Paris", "B": "London", "C": "A and B only", "D": "None of the above"}
NUMBERS = {"1": "red", "2": "green", "3": "blue", "4": "yellow"}


def example(answer: object = "C", choices: dict[str, str] | None = None) -> Example:
    return Example(0, "q0", "Which one?", answer, "multiple_choice", dict(LETTERS if choices is None else choices))


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("(B)", "B"),
        ("B)", "B"),
        ("B.", "B"),
        ("B", "B"),
        ("b", "B"),
        ("  B  \n", "B"),
        ("Answer: B", "B"),
        ("answer: b", "B"),
        ("ANSWER: B", "B"),
        ("the answer is B", "B"),
        ("The answer is (B).", "B"),
        ("The answer is: **B**", "B"),
        ("**Answer:** B", "B"),
        ("**Answer**: B) London", "B"),
        ("The correct answer is B.", "B"),
        ("The correct option is: (D)", "D"),
        ("The final answer is option D.", "D"),
        ("The answer would be C because both hold.", "C"),
        ("answer is (d)", "D"),
        ("**B**", "B"),
        ("I pick **B** here.", "B"),
        ("**(B) London**", "B"),
        (r"\boxed{B}", "B"),
        (r"$\boxed{B}$", "B"),
        (r"\boxed{\text{D}}", "D"),
        (r"\boxed{\textbf{(C)}}", "C"),
        (r"\boxed{(B) London}", "B"),
        (r"\fbox{A}", "A"),
        ("Paris", "A"),
        ("london.", "B"),
        ("The answer is Paris.", "A"),
        ("The answer is A and B only.", "C"),
        ("None of the above", "D"),
        ("B) London", "B"),
        ("Option B is the correct answer.", "B"),
        ("C is correct.", "C"),
        ("(C) is the right one.", "C"),
        ("Final answer: c", "C"),
        ("Let me think.\n\nB\n\nLondon is the capital.", "B"),
        ("I would say London.", "B"),
        ("My choice: option (B)", "B"),
    ],
)
def test_extracts_the_stated_key(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("(A) looks right at first, but the answer is (C).", "C"),
        ("The answer is A. Wait, no: the answer is D.", "D"),
        ("Answer: A\nOn reflection, Answer: B", "B"),
        (r"The answer is (A)... checking again, \boxed{C}", "C"),
        (r"\boxed{A} is wrong; the answer is B.", "B"),
        ("A) Paris\nB) London\nC) A and B only\nThe answer is (C)", "C"),
        ("**A** is tempting but **B** is wrong. The answer is D.", "D"),
        ("Not (A). The correct answer is (B), not (A).", "B"),
        ("A dog is an animal. The answer is (C).", "C"),
    ],
)
def test_explicit_statement_wins_and_the_last_one_wins(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("(B) fits best; (D) does not.", "B"),
        ("Let me analyze.\nA) wrong\nB) right", "A"),
        ("I'd go with **C**, though (A) is close.", "C"),
    ],
)
def test_without_an_explicit_statement_the_first_mention_wins(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    "output",
    [
        "",
        "   ",
        "A dog is an animal.",
        "A cat sat on the mat. A bird flew.",
        "I am not sure.",
        "the answer is a bit unclear",
        "The answer is not obvious.",
        "Both Paris and London are capitals.",
        "Vitamin B helps, CAB drivers know. DNA is fine.",
        "It is a question about ABC and BCD.",
        "Options: B-movies are fun.",
        r"\boxed{",
    ],
)
def test_no_key_is_read_out_of_ordinary_text(output: str) -> None:
    assert extract_choice(example(), output) is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is (2).", "2"),
        ("The answer is 3", "3"),
        ("2", "2"),
        ("(4)", "4"),
        ("**3**", "3"),
        (r"\boxed{1}", "1"),
        ("1. First I check red.\n2. Then green.\nThe answer is 4.", "4"),
        ("There are 12 shades; answer: 2", "2"),
        ("blue", "3"),
        ("The answer is green.", "2"),
        ("Option 3 is correct.", "3"),
    ],
)
def test_numeric_keys(output: str, expected: str) -> None:
    assert extract_choice(example("2", NUMBERS), output) == expected


@pytest.mark.parametrize(
    "output",
    ["It is 1.5 metres long.", "There are 12 of them.", "1. First step\n2. Second step", "The answer is 12."],
)
def test_numbers_inside_other_numbers_or_lists_are_not_keys(output: str) -> None:
    assert extract_choice(example("2", NUMBERS), output) is None


def test_keys_given_as_integers_and_gold_as_text_or_lowercase() -> None:
    assert gold_key(example(2, NUMBERS)) == "2"
    assert gold_key(example("c")) == "C"
    assert gold_key(example("London")) == "B"
    assert gold_key(example(None)) is None


def test_choice_keys_fall_back_to_letters() -> None:
    bare = Example(0, "q", "Q?", "A", "multiple_choice", None)
    assert choice_keys(bare) == ("A", "B", "C", "D", "E")
    assert extract_choice(bare, "The answer is (E).") == "E"


def test_five_options() -> None:
    choices = {**LETTERS, "E": "Rome"}
    assert extract_choice(example("E", choices), "The answer is (E).") == "E"
    assert extract_choice(example("E", choices), "Rome") == "E"


def test_score_batch() -> None:
    examples = [example("C"), example("B"), example("2", NUMBERS), example(None)]
    outputs = ["The answer is (C).", "The answer is (A).", "The answer is 2", "The answer is (A)."]
    assert score_multiple_choice(examples, outputs) == [1.0, 0.0, 1.0, 0.0]


def test_score_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 examples but 1 outputs"):
        score_multiple_choice([example(), example()], ["A"])


TRICKY = {
    "A": "An American founds a company in Ohio.",
    "B": "B",
    "C": "(A), (B), and (D)",
    "D": "A Mexican founds a company in St. Louis. It grows.",
}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is A Mexican founds a company in St. Louis. It grows.", "D"),
        ("The answer is An American founds a company in Ohio, since it is domestic.", "A"),
        ("The answer is (A), (B), and (D).", "C"),
        ("The answer is B", "B"),
        ("The answer is (D).", "D"),
    ],
)
def test_option_texts_that_look_like_keys(output: str, expected: str) -> None:
    assert extract_choice(example("D", TRICKY), output) == expected


@pytest.mark.parametrize(
    "output",
    [
        "\n" * 50_000,
        "\n \n*-" * 10_000,
        r"\boxed{" * 7_000,
        r"\text{" * 8_000,
        "the answer is " * 4_000,
        "Answer: " * 6_000,
        "(" * 50_000,
        "** " * 15_000,
    ],
)
def test_degenerate_generations_extract_nothing(output: str) -> None:
    assert extract_choice(example(), output) is None


RESTATED = "A) Paris\nB) London\nC) A and B only\nD) None of the above\n"
TRUTHFULQA = {
    "A": "Nothing happens.",
    "B": "You get sick.",
    "C": "You die.",
    "D": "You grow taller.",
    "E": "You fly.",
    "F": "You sneeze.",
    "G": "You sleep.",
    "H": "You laugh.",
    "I": "I have no comment.",
}
SCIENCEMETER = {"A": "support", "B": "refute"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (RESTATED + "\n**A**", "A"),
        (RESTATED + "\n**B**", "B"),
        (RESTATED + "\n**C**", "C"),
        (RESTATED + "\n**D**", "D"),
        ("(A) Paris\n(B) London\n(C) A and B only\n\nD", "D"),
        ("Both facts hold, so only the combined option fits.\nTherefore, **C**.", "C"),
        ("Therefore, **C**.", "C"),
        (RESTATED + "The answer is (A).\nOn reflection:\n**B**", "B"),
        ("Reasoning about the capitals.\nB) London", "B"),
    ],
)
def test_restated_options_are_not_answers_and_a_final_key_is(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is not (A), it is (C)", "C"),
        ("The answer is not (B).", None),
        ("It isn't (A); I pick (B).", "B"),
        ("(C) rather than (A)", "C"),
        ("Instead of (A), choose (D).", "D"),
        ("Definitely not Paris.", None),
        ("Definitely not Paris, it is London.", "B"),
    ],
)
def test_negated_keys_are_not_answers(output: str, expected: str | None) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is (A) or (C)", None),
        ("The answer is A or C.", None),
        ("I'm torn between (B) and (C). I'll go with (C).", "C"),
        ("The answer is (A) or (C). I'll go with (A).", "A"),
    ],
)
def test_hedged_answers(output: str, expected: str | None) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Answer: I'm fairly sure it's B", "B"),
        ("Answer: I think it is (C).", "C"),
        ("The answer is I.", "I"),
        ("I'm not sure, but the answer is (D).", "D"),
        ("I have no comment.", "I"),
        ("A dog would not fly.", None),
    ],
)
def test_a_capital_opening_words_is_not_a_key(output: str, expected: str | None) -> None:
    assert extract_choice(example("I", TRUTHFULQA), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The claim is refuted.", "B"),
        ("The evidence does not support the claim; it is refuted.", "B"),
        ("The evidence supports the claim.", "A"),
        ("refute", "B"),
        ("It neither supports nor refutes it.", None),
    ],
)
def test_one_word_options_match_their_word_forms(output: str, expected: str | None) -> None:
    assert extract_choice(example("B", SCIENCEMETER), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("I believe it is D, not A", "D"),
        ("I think it's C.", "C"),
        ("Definitely D.", "D"),
        ("I'd say B.", "B"),
        ("It's B", "B"),
        ("B, because London is the capital of England.", "B"),
        ("Correct answer - B", "B"),
        ("London is the capital of England, so B.", "B"),
        ("Thus (C).", "C"),
        ("It must be **D**, since neither city fits.", "D"),
        ("I'm going with B", "B"),
        ("B is my answer.", "B"),
        ("B would be correct here.", "B"),
        ("The best choice here is B.", "B"),
        ("Hmm. Probably C, not D.", "C"),
        ("It's B rather than A.", "B"),
        ("Answer - D", "D"),
        ("D it is.", "D"),
        ("Going with D.", "D"),
        ("I'm leaning towards D.", "D"),
        ("Correct: D", "D"),
        ("My pick: (D)", "D"),
        ("=> D", "D"),
        ("The answer is not A but D.", "D"),
        ("D is the one.", "D"),
        ("After weighing both cities, D.", "D"),
    ],
)
def test_committed_phrasings(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("the answer is A... no wait, it's B.", "B"),
        ("The answer is (A). Hmm, actually I'd say C.", "C"),
        ("Answer: D. On second thought, it is B.", "B"),
        ("It's A. No wait, the answer is (D).", "D"),
    ],
)
def test_self_correction_takes_the_last_committed_answer(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected


ORGANS = {"A": "Liver", "B": "Heart", "C": "Kidney", "D": "Lung"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is the heart.", "B"),
        ("It is the kidney, which filters blood.", "C"),
        ("the lung", "D"),
    ],
)
def test_option_text_preceded_by_the(output: str, expected: str) -> None:
    assert extract_choice(example("B", ORGANS), output) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("It is a hard question.", None),
        ("So A, B and C are all cities.", None),
        ("It's not B.", None),
        ("The options are A, B, C.", None),
        ("Sequences: [V,H,D] and\n[V,O,D]", None),
        ("The answer is B. Paris is not in England, so it is a trap.", "B"),
    ],
)
def test_commitments_need_a_lone_key(output: str, expected: str | None) -> None:
    assert extract_choice(example(), output) == expected


@pytest.mark.parametrize(
    "output",
    [
        "The answer is (C) Paris",
        "**(C) Paris**",
        r"\boxed{(C) Paris}",
        "The answer is C: London.",
        "Let me see.\nC) None of the above",
    ],
)
def test_a_key_labelled_with_another_options_text_is_a_conflict(output: str) -> None:
    assert extract_choice(example(), output) is None
    assert choice_conflict(example(), output)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is (B) London", "B"),
        ("The answer is (B): London, the capital.", "B"),
        ("The answer is B. Paris is in France.", "B"),
        ("The answer is (C) because Paris and London both are.", "C"),
    ],
)
def test_a_key_labelled_with_its_own_text_or_followed_by_prose_is_kept(output: str, expected: str) -> None:
    assert extract_choice(example(), output) == expected
    assert not choice_conflict(example(), output)


YES_NO = {"A": "No", "B": "Yes", "C": "Maybe"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is (B) No.", None),
        ("(A) Yes, because it holds", None),
        ("The answer is (B) no doubt about it.", "B"),
        ("The answer is (B): Yes, clearly", "B"),
    ],
)
def test_a_short_option_text_labels_only_when_it_is_the_whole_label(output: str, expected: str | None) -> None:
    assert extract_choice(example("B", YES_NO), output) == expected


def test_conflicts_are_recorded_as_an_extra_metric() -> None:
    spec = scorer_spec()
    assert spec.extra_metrics is not None
    outputs = ["The answer is (C) Paris", "The answer is (A) or (C)", "The answer is (C)."]
    assert spec.extra_metrics([example()] * 3, outputs) == [
        {"answer_conflict": 1.0},
        {"answer_conflict": 1.0},
        {"answer_conflict": 0.0},
    ]
    assert spec.score([example()] * 3, outputs) == [0.0, 0.0, 1.0]
