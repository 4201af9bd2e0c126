"""The ``general_verifier`` task type: a verifier LM judges a free-form answer against the gold.

Answers to open questions (physics, finance, chemistry...) come in forms that string
matching cannot compare, so a small verifier model (default TIGER-Lab/general-verifier)
decides whether the student's answer is equivalent to the ground truth. Its documented
prompt is plain text, ``User: ... Assistant:``, not its chat template, and it ends with
"Final Decision: Yes" or "Final Decision: No".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moco_core.config import ScoringConfig
from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals import scoring_models
from moco_evals.latex import last_boxed
from moco_evals.scoring_models import raw_prompt

# Student answers are cut to their end: the final answer is stated last, and a long chain of
# reasoning would push the verifier (trained on short answers) off its format.
MAX_ANSWER_CHARS = 4000

VERIFIER_TEMPLATE = (
    "User: ### Question: {question}\n\n"
    "### Ground Truth Answer: {gold}\n\n"
    "### Student Answer: {answer}\n\n"
    "For the above question, please verify if the student's answer is equivalent to the ground truth answer.\n"
    "Do not solve the question by yourself; just check if the student's answer is equivalent to the ground truth "
    "answer.\n"
    "If the student's answer is correct, output \"Final Decision: Yes\". If the student's answer is incorrect, "
    'output "Final Decision: No". Assistant:'
)


def gold_text(answer: Any) -> str | None:
    """The gold answer as one string; aliases are joined with " or "; None when there is none."""
    if answer is None:
        return None
    if isinstance(answer, (list, tuple)):
        parts = [str(a).strip() for a in answer if a is not None and str(a).strip()]
        return " or ".join(parts) if parts else None
    text = str(answer).strip()
    return text or None


def student_answer(example: Example, output: str) -> str:
    """The part of ``output`` the verifier compares: the last ``\\boxed{}`` if any, else its end.

    The General-Reasoner verifier was trained on extracted final answers; a boxed answer is
    exactly that, and otherwise the tail of the response holds the conclusion.
    """
    text = (output or "").strip()
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    return text[-MAX_ANSWER_CHARS:]


def extract_verifier_answer(example: Example, output: str) -> str | None:
    """A short comparable answer for voting: the last ``\\boxed{}``, else the last non-empty line."""
    text = (output or "").strip()
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else None


def verifier_prompt(question: str, gold: str, answer: str) -> str:
    """TIGER-Lab/general-verifier's prompt for one (question, gold, student answer)."""
    return VERIFIER_TEMPLATE.format(question=question.strip(), gold=gold, answer=answer)


def parse_final_decision(text: str) -> bool | None:
    """True for "Final Decision: Yes", False for "... No", None when no decision is stated.

    The last decision wins (the verifier may restate the instruction first); bold, quotes
    and ``\\boxed{}`` around the word are tolerated.
    """
    return scoring_models.last_labelled_yes_no(text, ["final decision"])


def score_verifier(examples: Sequence[Example], outputs: Sequence[str], options: ScoringConfig | None) -> list[float]:
    """1.0 when the verifier accepts the answer, else 0.0 (also for an empty answer or no gold).

    Empty answers and items without a gold are not sent to the model: they cannot be
    correct, and skipping them saves a generation each.
    """
    options = scoring_models.scoring_options(options)
    scores = [0.0] * len(examples)
    prompts: list[str] = []
    rows: list[int] = []
    for i, (example, output) in enumerate(zip(examples, outputs, strict=True)):
        gold = gold_text(example.answer)
        answer = student_answer(example, output)
        if gold is None or not answer:
            continue
        rows.append(i)
        prompts.append(verifier_prompt(example.question, gold, answer))
    if not prompts:
        return scores
    texts = scoring_models.generate_texts(options.verifier_model, prompts, options, "verifier_model", raw=True)
    for row, text in zip(rows, texts, strict=True):
        scores[row] = 1.0 if parse_final_decision(text) else 0.0
    return scores


def scorer_spec() -> ScorerSpec:
    """The ``general_verifier`` scorer: raw input as prompt, verifier decision as 0/1 score."""
    return ScorerSpec(
        task_type="general_verifier",
        prompt=raw_prompt,
        score=score_verifier,
        extract=extract_verifier_answer,
        metric="accuracy",
    )
