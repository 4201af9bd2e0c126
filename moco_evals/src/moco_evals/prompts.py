"""Prompts of the task types this plugin scores.

The instructions name the answer format that the extractors look for first, so a model that
follows them is scored on its answer rather than on its formatting.
"""

from __future__ import annotations

from moco_core.types import Example

BOXED_INSTRUCTION = "Put your final answer in \\boxed{}."


def _key_word(keys: list[str]) -> str:
    if all(len(k) == 1 and k.isalpha() for k in keys):
        return "letter"
    if all(k.isdigit() for k in keys):
        return "number"
    return "key"


def multiple_choice_prompt(example: Example) -> str:
    """The question, one ``KEY) text`` line per option, and how to state the choice."""
    choices = example.choices or {}
    lines = [f"{key}) {text}" for key, text in choices.items()]
    word = _key_word(list(choices)) if choices else "letter"
    instruction = f"Answer with the {word} of the correct option, as 'The answer is (X)'."
    return "\n\n".join(part for part in (example.question.strip(), "\n".join(lines), instruction) if part)


def exact_match_prompt(example: Example) -> str:
    """The problem followed by the request to box the final answer (exact_match, f1_match)."""
    return f"{example.question.strip()}\n\n{BOXED_INSTRUCTION}"


def raw_prompt(example: Example) -> str:
    """The input exactly as given: noncompliance requests are judged on the model's own reaction,
    so no instruction may be added to them."""
    return example.question
