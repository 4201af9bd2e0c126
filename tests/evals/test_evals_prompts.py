"""Prompt layout of the two task types."""

from __future__ import annotations

from moco_core.types import Example
from moco_evals.prompts import BOXED_INSTRUCTION, exact_match_prompt, multiple_choice_prompt


def test_multiple_choice_prompt_layout() -> None:
    ex = Example(0, "q", "  Capital of France?\n", "A", "multiple_choice", {"A": "Paris", "B": "London"})
    assert multiple_choice_prompt(ex) == (
        "Capital of France?\n\nA) Paris\nB) London\n\n"
        "Answer with the letter of the correct option, as 'The answer is (X)'."
    )


def test_multiple_choice_prompt_names_numeric_keys() -> None:
    ex = Example(0, "q", "Pick one.", "2", "multiple_choice", {"1": "red", "2": "green", "3": "blue", "4": "grey"})
    prompt = multiple_choice_prompt(ex)
    assert "\n1) red\n2) green\n3) blue\n4) grey\n" in prompt
    assert prompt.endswith("Answer with the number of the correct option, as 'The answer is (X)'.")


def test_multiple_choice_prompt_other_keys() -> None:
    ex = Example(0, "q", "Pick one.", "id", "multiple_choice", {"A": "x", "B": "y", "C": "z", "id": "w"})
    assert "\nid) w" in multiple_choice_prompt(ex)
    assert "Answer with the key of the correct option" in multiple_choice_prompt(ex)


def test_exact_match_prompt() -> None:
    ex = Example(0, "q", "What is 6 * 7?", "42", "exact_match")
    assert exact_match_prompt(ex) == "What is 6 * 7?\n\nPut your final answer in \\boxed{}."
    assert BOXED_INSTRUCTION == r"Put your final answer in \boxed{}."
