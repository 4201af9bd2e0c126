from __future__ import annotations

import pytest

from moco_methods_text.structured_interaction import in_neighbours


def member(name: str, dev_right: bool = False):
    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "A" if dev_right else "D"
        if "Answers from your neighbours" in prompt:
            return f"C revised by {name}"
        return f"B first answer of {name}"

    return respond


def test_chain_shows_model_three_only_model_two(text):
    models = text.pool({n: member(n, dev_right=n == "m2") for n in ("m1", "m2", "m3")})
    lines = text.ok("structured_interaction", models, {"structure": "chain", "rounds": 2})
    (prompt, _) = text.prompts("m3", "Answers from your neighbours")
    neighbours = prompt.split("Answers from your neighbours")[1]
    assert "Assistant 2:\nB first answer of m2" in neighbours
    assert "m1" not in neighbours and "m3" not in neighbours
    middle = text.prompts("m2", "Answers from your neighbours")[0].split("Answers from your neighbours")[1]
    assert "Assistant 1:" in middle and "Assistant 3:" in middle
    assert lines[0]["reporter"] == "m2" and lines[0]["output"] == "C revised by m2"
    assert text.metrics()["in_neighbours"] == {"m1": ["m2"], "m2": ["m1", "m3"], "m3": ["m2"]}


def test_directed_adjacency_and_isolated_members_keep_their_answer(text):
    models = text.pool({n: member(n, dev_right=n == "m1") for n in ("m1", "m2", "m3")})
    adjacency = [[0, 1, 0], [0, 0, 0], [0, 0, 0]]  # m2 sees m1; m1 and m3 see nobody
    lines = text.ok("structured_interaction", models, {"structure": "adjacency", "adjacency": adjacency, "rounds": 3})
    assert not text.prompts("m1", "neighbours") and not text.prompts("m3", "neighbours")
    assert lines[0]["rounds"][2] == {
        "m1": "B first answer of m1",
        "m2": "C revised by m2",
        "m3": "B first answer of m3",
    }
    assert lines[0]["output"] == "B first answer of m1"


@pytest.mark.parametrize(
    ("structure", "n", "expected"),
    [
        ("tree", 5, [[1, 2], [0, 3, 4], [0], [1], [1]]),
        ("star", 4, [[1, 2, 3], [0], [0], [0]]),
        ("circle", 4, [[1, 3], [0, 2], [1, 3], [0, 2]]),
        ("complete", 3, [[1, 2], [0, 2], [0, 1]]),
    ],
)
def test_built_in_structures(structure, n, expected):
    assert in_neighbours(structure, n, None) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"structure": "circle"}, "'circle' needs at least 3 models"),
        ({"structure": "adjacency"}, "params.adjacency: structure 'adjacency' needs the matrix"),
        ({"structure": "adjacency", "adjacency": [[0, 1, 0]] * 3}, "params.adjacency: must be 2x2"),
        ({"structure": "chain", "adjacency": [[0, 1], [1, 0]]}, "only used with structure 'adjacency'"),
        ({}, "structure"),
    ],
)
def test_structures_that_do_not_fit_are_refused_before_loading(text, params, message):
    models = text.pool({"m1": "A", "m2": "B"})
    result = text.run("structured_interaction", models, params)
    assert result.exit_code == 2 and message in result.output
    assert not text.seen["m1"] and not text.seen["m2"]
