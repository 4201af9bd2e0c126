"""The ``f1_match`` task type: SQuAD-style token F1 against the best of the gold aliases.

Knowledge questions (PopQA, WikiDYK) have names for answers, stated with varying detail
("Toulon" vs "Toulon, France"), so partial overlap earns partial credit.  The answer is
taken from a box or "the answer is" when the model states one, so the reasoning around it
does not dilute the score; otherwise the whole response is compared.  Beside F1 (the
paper's metric), ``alias_accuracy`` is the PopQA paper's accuracy: 1 when a gold alias
appears in the answer, so a correct full-sentence answer shows as correct.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

from moco_core.registry import ScorerSpec
from moco_core.types import Example
from moco_evals.exact_match import ANSWER_PHRASE
from moco_evals.latex import last_boxed, unwrap_text_commands
from moco_evals.prompts import exact_match_prompt
from moco_evals.quirks import is_unscorable

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
# A sentence ends at a full stop after a word of four or more characters, before a capital that
# opens three or more words, so the abbreviations names are full of ("Robert L. Zemeckis", "Dem. Rep.
# Korea", "Okla. City", "subsp. pumila") stay whole; "!" and "?" never end one, as titles contain
# them ("Qallunaat! Why White People Are Funny").
_SENTENCE_END = re.compile(r"(?<=[^\W_]{4})\.\s+(?=[\"“(]?[A-Z]\S*(?:\s+\S+){2})")
_JUNK = " \t\n*_`\"'“”:"


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _is_dash(char: str) -> bool:
    return char == "-" or unicodedata.category(char) == "Pd"


def answer_tokens(text: str) -> list[str]:
    """SQuAD normalisation: lowercase, punctuation and articles removed, split on whitespace.

    Unicode punctuation (curly quotes) is removed as well as ASCII punctuation; hyphens and dashes
    separate words ("Saint-Étienne" is "saint etienne") and accents are folded ("Beyoncé" is "beyonce").
    """
    folded = "".join(
        char for char in unicodedata.normalize("NFKD", str(text).lower()) if not unicodedata.combining(char)
    )
    text = "".join(
        " " if char.isspace() or _is_dash(char) else char
        for char in folded
        if not _is_punctuation(char) or _is_dash(char)
    )
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall; 0.0 when either side has no tokens."""
    predicted, expected = answer_tokens(prediction), answer_tokens(gold)
    if not predicted or not expected:
        return 0.0
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def gold_aliases(answer: Any) -> list[str]:
    """The gold answer as a list of aliases (a single string becomes a one-item list)."""
    if answer is None:
        return []
    if isinstance(answer, (list, tuple)):
        return [str(alias) for alias in answer if alias is not None]
    return [str(answer)]


def best_f1(prediction: str, answer: Any) -> float:
    """The best token F1 of ``prediction`` over the gold aliases."""
    return max((token_f1(prediction, alias) for alias in gold_aliases(answer)), default=0.0)


def contains_alias(prediction: str, answer: Any) -> bool:
    """Whether some gold alias appears in ``prediction`` as whole words, after normalisation."""
    haystack = f" {' '.join(answer_tokens(prediction))} "
    for alias in gold_aliases(answer):
        needle = " ".join(answer_tokens(alias))
        if needle and f" {needle} " in haystack:
            return True
    return False


def extract_f1_answer(output: str) -> str:
    """The stated answer: the last box, else the text after the last "the answer is" /
    "Final answer:" up to the end of its line and sentence, else the whole response."""
    if not output:
        return ""
    boxed = last_boxed(output)
    if boxed is not None and boxed.strip():
        return unwrap_text_commands(boxed).strip(_JUNK)
    for phrase in reversed(list(ANSWER_PHRASE.finditer(output))):
        line = output[phrase.end() : phrase.end() + 2000].lstrip(_JUNK).split("\n", 1)[0]
        fragment = _SENTENCE_END.split(line, 1)[0].strip(_JUNK + ".")
        if fragment:
            return fragment
    return output.strip()


def extract_f1_match(example: Example, output: str) -> str | None:
    """The normalised stated answer, so that equal answers give equal strings (voting)."""
    tokens = answer_tokens(extract_f1_answer(output))
    return " ".join(tokens) if tokens else None


def score_f1_match(examples: Sequence[Example], outputs: Sequence[str], options: object = None) -> list[float]:
    """Best token F1 per output, in [0, 1]; unscorable items score 0."""
    if len(examples) != len(outputs):
        raise ValueError(f"{len(examples)} examples but {len(outputs)} outputs")
    return [
        0.0 if is_unscorable(example) else best_f1(extract_f1_answer(output), example.answer)
        for example, output in zip(examples, outputs, strict=True)
    ]


def alias_metrics(
    examples: Sequence[Example], outputs: Sequence[str], options: object = None
) -> list[dict[str, float]]:
    """``alias_accuracy`` per item: the stated answer contains a gold alias (PopQA's accuracy)."""
    return [
        {"alias_accuracy": float(not is_unscorable(e) and contains_alias(extract_f1_answer(o), e.answer))}
        for e, o in zip(examples, outputs, strict=True)
    ]


def scorer_spec() -> ScorerSpec:
    """The ``f1_match`` task type: boxed answer, token F1 against the best alias."""
    return ScorerSpec(
        task_type="f1_match",
        prompt=exact_match_prompt,
        extract=extract_f1_match,
        score=score_f1_match,
        metric="f1",
        extra_metrics=alias_metrics,
    )
