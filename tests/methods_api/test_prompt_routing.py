from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.testing import set_responder
from moco_methods_api.prompt_routing import parse_choice, routing_prompt

cli = CliRunner()
NAMES = ["math", "history", "code"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Model 2", 1),
        ("I would pick model #3 for this.", 2),
        ("3", 2),
        ("Model 7 is best, otherwise Model 1", 0),
        ("history seems right", 1),
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_choice(reply, expected):
    assert parse_choice(reply, NAMES) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Model 1 handles algebra; this query is about the Roman empire.\nModel 2", 1),
        ("Model 3 writes code.\n**Final answer: Model 1**", 0),
        ("Reasoning about Model 1 and Model 3...\nModel 2.", 1),
        ("Model 1 is tempting.\n3", 2),
    ],
)
def test_the_strict_final_line_decides(reply, expected):
    assert parse_choice(reply, NAMES) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Not Model 1; Model 3 is better", 2),
        ("Model 1 is not suited here. Model 2 knows history.", 1),
        ("Use model 2 rather than model 3.", 1),
        ("I'd pick Model 3 instead of Model 1", 2),
        ("Model 1 isn't the right one, so model 3", 2),
        ("Not Model 1.", None),
        ("Model 1, not 3", 0),
    ],
)
def test_negated_mentions_are_not_choices(reply, expected):
    assert parse_choice(reply, NAMES) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Model 2.5", None),
        ("Model 2.5 would be ideal, but Model 3 exists", 2),
        ("Model 1,5 is a typo", None),
        ("Model 12", None),
        ("Model 1 and Model 2 could both work.", None),
    ],
)
def test_numbers_that_are_not_a_single_pool_model_choose_none(reply, expected):
    assert parse_choice(reply, NAMES) == expected


def test_routing_prompt_asks_for_a_strict_final_line():
    prompt = routing_prompt("What is 2+2?", ["good at math", "good at history"])
    assert "final line" in prompt and "'Model k'" in prompt and "1 to 2" in prompt


def test_routing_prompt_numbers_descriptions():
    prompt = routing_prompt("What is 2+2?", ["good at math", "good at history"])
    assert "Model 1: good at math" in prompt and "Model 2: good at history" in prompt
    assert "What is 2+2?" in prompt


def test_router_sends_each_query_to_the_named_model(scripted_with_evals, tmp_path):
    def router(request):
        if "Choose the model" not in request.prompt:
            return "The answer is (A)."
        if "history question" in request.prompt:
            return "Model 1 knows maths, not history.\nModel 2"
        return "Not Model 2.\nModel 1" if "maths question" in request.prompt else "Model 2.5, or Model 3"

    set_responder("route-router", router)
    set_responder("route-expert", "The answer is (B).")
    items = [
        {"id": i, "question": f"{topic} question {i}", "choices": {"A": "x", "B": "y"}, "answer": "B"}
        for i, topic in enumerate(["history", "maths", "art"])
    ]
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"name": "d", "task_type": "multiple_choice", "dev": items[:1], "test": items}))
    config = {
        "method": "prompt_routing",
        "params": {"router": "router"},
        "models": [
            {"name": "router", "path": "route-router", "backend": "scripted", "description": "generalist"},
            {"name": "expert", "path": "route-expert", "backend": "scripted", "description": "history expert"},
        ],
        "dataset": {"path": str(data)},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [line["routed_to"] for line in lines] == ["expert", "router", "expert"]  # unparsed -> dev-best
    assert [line["route_parsed"] for line in lines] == [True, True, False]
    assert [line["score"] for line in lines] == [1.0, 0.0, 1.0]
    bad = {**config, "params": {"router": "nobody"}, "output_dir": str(tmp_path / "bad")}
    path.write_text(yaml.safe_dump(bad))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "params.router" in result.output
