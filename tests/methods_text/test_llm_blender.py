from __future__ import annotations

import pytest

from moco_methods_text.llm_blender import parse_verdict

QUALITY = {"u": 1, "v": 3, "w": 2}


def member(name: str, dev_right: bool = False):
    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "A" if dev_right else "D"
        if "Which candidate answers the question better" in prompt:
            a = prompt.split("Candidate A:\n")[1].split("\n")[0]
            b = prompt.split("Candidate B:\n")[1].split("\n")[0]
            if "w" in (a[-1], b[-1]) and "u" in (a[-1], b[-1]):
                return "Both are fine."  # unparseable: half a win each
            return "A" if QUALITY[a[-1]] > QUALITY[b[-1]] else "Candidate B is better."
        if "Fuse the candidates" in prompt:
            return f"A fused by {name}"
        return f"B answer of {name}"

    return respond


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("A", "A"),
        ("(B)", "B"),
        ("Candidate B is better.", "B"),
        ("**A**", "A"),
        ("Verdict: B", "B"),
        ("Both are good, but A", None),
        ("Candidate A and Candidate B", None),
        ("", None),
    ],
)
def test_parse_verdict_is_strict(reply, verdict):
    assert parse_verdict(reply) == verdict


def test_ranks_by_pairwise_wins_and_fuses_the_top_k_best_first(text):
    models = text.pool({n: member(n, dev_right=n == "u") for n in "uvw"})
    lines = text.ok("llm_blender", models, {"top_k": 2})
    line = lines[0]
    assert line["wins"] == {"u": 0.5, "v": 2.0, "w": 0.5}
    assert line["ranking"] == ["v", "u", "w"] and line["fused"] == ["v", "u"]
    assert len(line["comparisons"]) == 3 and line["output"] == "A fused by u"
    (fuse, _) = text.prompts("u", "Fuse the candidates")
    assert fuse.index("B answer of v") < fuse.index("B answer of u") and "answer of w" not in fuse


def test_both_orders_and_named_ranker_and_fuser(text):
    models = text.pool({n: member(n) for n in "uvw"})
    params = {"both_orders": True, "ranker_model": "w", "fuser_model": "v", "top_k": 1}
    line = text.ok("llm_blender", models, params, data=text.data(n_dev=0))[0]
    assert len(line["comparisons"]) == 6 and line["wins"]["v"] == 4.0
    assert line["output"] == "A fused by v" and len(text.prompts("w", "Which candidate")) == 12


def test_fuser_target_is_the_gold_option_text():
    from moco_core.types import Example
    from moco_methods_text.llm_blender import gold_text

    choice = Example(0, "q", "?", "B", "multiple_choice", choices={"A": "red", "B": "blue"})
    assert gold_text(choice) == "blue"
    assert gold_text(Example(0, "q", "?", ["Paris", "paris"], "f1_match")) == "Paris"
    assert gold_text(Example(0, "q", "?", 42, "exact_match")) == "42"
