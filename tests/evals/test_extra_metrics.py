"""A scorer's secondary metrics reach each prediction line and metrics.json through a real run."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import get_registry
from moco_core.testing import set_responder

cli = CliRunner()


def test_flexible_accuracy_is_reported_beside_the_strict_score(scripted_with_evals, tmp_path):
    if "single_model" not in get_registry().methods:
        pytest.skip("moco-methods-api is not installed")
    answers = {
        "q1": r"\boxed{90}",
        "q2": "He bought 3 packs. So, John can make 90 small bags",
        "q3": "I do not know.",
        "q4": r"The answer is \box{12}.",
    }
    set_responder("flex-model", lambda request: next(text for key, text in answers.items() if key in request.prompt))
    items = [
        {"id": i, "input": f"{key}: how many?", "output": "90" if i < 3 else "12"} for i, key in enumerate(answers)
    ]
    data = tmp_path / "d.json"
    data.write_text(json.dumps({"name": "d", "task_type": "exact_match", "dev": items[:1], "test": items}))
    config = {
        "method": "single_model",
        "models": [{"name": "m", "path": "flex-model", "backend": "scripted"}],
        "dataset": {"path": str(data)},
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [line["score"] for line in lines] == [1.0, 0.0, 0.0, 1.0]
    assert [line["extra_scores"] for line in lines] == [{"flexible_accuracy": v} for v in (1.0, 1.0, 0.0, 1.0)]
    score = json.loads((tmp_path / "run" / "metrics.json").read_text())["score"]
    assert score["mean"] == 0.5
    assert score["extra"] == {"flexible_accuracy": 0.75}
