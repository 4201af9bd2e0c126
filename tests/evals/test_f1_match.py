"""Token F1 over gold aliases: extraction of the stated answer, SQuAD normalisation, scoring."""

from __future__ import annotations

import pytest

from moco_core.types import Example
from moco_evals.f1_match import (
    answer_tokens,
    best_f1,
    extract_f1_answer,
    extract_f1_match,
    score_f1_match,
    scorer_spec,
    token_f1,
)


def example(answer: object) -> Example:
    return Example(0, "q", "Capital of Var?", answer, "f1_match")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The answer is Toulon.", "Toulon"),
        ("The answer is Toulon. It is a port on the Mediterranean.", "Toulon"),
        ("The answer is Okla. City.", "Okla. City"),
        ("The answer is Robert L. Zemeckis. He directed it.", "Robert L. Zemeckis"),
        ("The answer is Qallunaat! Why White People Are Funny.", "Qallunaat! Why White People Are Funny"),
        ("Final answer: **Jiggle Jiggle**\nIt went viral.", "Jiggle Jiggle"),
        ("Answer:\n\nToulon", "Toulon"),
        (r"Probably Nice. \boxed{\text{Toulon}}", "Toulon"),
        (r"\boxed{Nice} ... no wait, \boxed{Toulon}", "Toulon"),
        ("The answer is Nice. Actually, the answer is Toulon.", "Toulon"),
        ("I think it is Toulon, in France.", "I think it is Toulon, in France."),
        ("", ""),
    ],
)
def test_extract(output: str, expected: str) -> None:
    assert extract_f1_answer(output) == expected


def test_squad_normalisation() -> None:
    assert answer_tokens("The U.S.A.!") == ["usa"]
    assert answer_tokens("“Jiggle”  Jiggle — a song") == ["jiggle", "jiggle", "song"]
    assert answer_tokens("An apple and the pear") == ["apple", "and", "pear"]
    assert answer_tokens("...") == []


@pytest.mark.parametrize(
    ("prediction", "gold", "f1"),
    [
        ("Toulon", "Toulon", 1.0),
        ("toulon.", "Toulon", 1.0),
        ("Toulon, France", "Toulon", 2 / 3),
        ("Port la Montagne", "Port-la-Montagne", 1.0),
        ("the the", "the", 0.0),
        ("Paris", "Toulon", 0.0),
        ("", "Toulon", 0.0),
    ],
)
def test_token_f1(prediction: str, gold: str, f1: float) -> None:
    assert token_f1(prediction, gold) == pytest.approx(f1)


def test_best_alias_wins() -> None:
    aliases = ["United States of America", "USA", "U.S.", "the States"]
    assert best_f1("USA", aliases) == 1.0
    assert best_f1("U.S.", aliases) == 1.0
    assert best_f1("United States", aliases) == pytest.approx(2 / 3)
    assert best_f1("Canada", aliases) == 0.0
    assert best_f1("x", None) == 0.0


def test_score_batch_and_unscorable() -> None:
    aliases = ["Toulon", "Port-la-Montagne", "Tolon"]
    marked = Example(0, "q", "?", ["x"], "f1_match", extra={"unscorable": "no gold answer"})
    outputs = ["The answer is Tolon.", "The answer is Toulon, France.", "The answer is zzz.", "The answer is x."]
    scores = score_f1_match([example(aliases)] * 3 + [marked], outputs)
    assert scores == pytest.approx([1.0, 2 / 3, 0.0, 0.0])
    with pytest.raises(ValueError, match="1 examples but 2 outputs"):
        score_f1_match([example("a")], ["a", "b"])


def test_extract_for_voting_and_spec() -> None:
    ex = example("Toulon")
    assert extract_f1_match(ex, r"\boxed{The Toulon!}") == extract_f1_match(ex, "The answer is toulon.") == "toulon"
    assert extract_f1_match(ex, "...") is None
    spec = scorer_spec()
    assert (spec.task_type, spec.metric) == ("f1_match", "f1")
    assert spec.prompt(ex).endswith("Put your final answer in \\boxed{}.")


@pytest.mark.parametrize(
    ("prediction", "gold"),
    [("Saint Etienne", "Saint-Étienne"), ("Beyonce", "Beyoncé"), ("Jean-Luc Godard", "Jean Luc Godard")],
)
def test_accents_and_hyphens_are_folded(prediction: str, gold: str) -> None:
    assert token_f1(prediction, gold) == 1.0
    assert score_f1_match([example(gold)], [rf"\boxed{{{prediction}}}"]) == [1.0]


@pytest.mark.parametrize(
    ("output", "answer", "accurate"),
    [
        ("The capital of Var is Toulon, a port city in the south of France.", ["Toulon"], 1.0),
        ("The answer is Toulon, France.", "Toulon", 1.0),
        ("It is Saint-Étienne.", ["Saint Etienne", "St Etienne"], 1.0),
        ("The answer is Toulouse.", ["Toulon"], 0.0),
        ("The answer is Toulonnais.", ["Toulon"], 0.0),
        ("The answer is Toulon.", None, 0.0),
        ("", ["Toulon"], 0.0),
    ],
)
def test_alias_accuracy_credits_a_contained_gold_alias(output: str, answer: object, accurate: float) -> None:
    spec = scorer_spec()
    assert spec.metric == "f1"
    assert spec.extra_metrics is not None
    assert spec.extra_metrics([example(answer)], [output]) == [{"alias_accuracy": accurate}]


def test_a_full_sentence_answer_keeps_partial_f1_but_full_alias_accuracy() -> None:
    spec = scorer_spec()
    output = "The capital of Var is Toulon, a port city in the south of France."
    assert spec.extra_metrics is not None
    assert 0.0 < spec.score([example(["Toulon"])], [output])[0] < 0.5
    assert spec.extra_metrics([example(["Toulon"])], [output]) == [{"alias_accuracy": 1.0}]
