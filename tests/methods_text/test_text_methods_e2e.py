"""Every text-level method end to end on tiny Hugging Face models through ``moco run``, and resumed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import get_registry

pytestmark = pytest.mark.slow
cli = CliRunner()

METHODS = [
    ("majority_vote", {}),
    ("self_consistency", {"samples": 2}),
    ("slm_mux", {"samples_per_model": 2}),
    ("multiagent_debate", {"rounds": 2}),
    ("multiagent_refine", {"rounds": 2}),
    ("multiagent_feedback", {"rounds": 2, "feedback_count": 1}),
    ("knowledge_card", {}),
    ("structured_interaction", {"structure": "chain", "rounds": 2}),
    ("blackboard", {"max_iterations": 2}),
    ("mixture_of_agents", {"layers": 2}),
    ("llm_blender", {"top_k": 2}),
    ("heterogeneous_swarms", {"pso": {"population": 2, "max_iterations": 1}, "dev_ratio": 0.5}),
]


def mc_data(path: Path) -> Path:
    def item(split: str, i: int) -> dict:
        return {
            "id": f"{split}{i}",
            "question": f"Which number is {i + 1}?",
            "choices": {"A": "1", "B": "2"},
            "answer": "AB"[i % 2],
        }

    path.write_text(
        json.dumps(
            {
                "name": "tiny_mc",
                "task_type": "multiple_choice",
                "dev": [item("dev", i) for i in range(2)],
                "test": [item("test", i) for i in range(3)],
            }
        )
    )
    return path


def test_every_text_method_is_registered():
    registered = {k for k, s in get_registry().methods.items() if s.level == "text"}
    trained = {"multiagent_finetuning", "sparta", "agglm"}  # end to end in test_training_methods
    assert {m for m, _ in METHODS} | trained <= registered


@pytest.mark.parametrize(("method", "params"), METHODS, ids=[m for m, _ in METHODS])
def test_runs_on_tiny_models_and_resumes(tmp_path, fresh_cache_dir, tiny_pool_paths, method, params):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    config = {
        "method": method,
        "params": params,
        "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths)],
        "dataset": {"path": str(mc_data(tmp_path / "d.json"))},
        "generation": {"max_new_tokens": 4, "temperature": 0.7, "seed": 1, "batch_size": 8},
        "hardware": {"device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    predictions = tmp_path / "run" / "predictions.jsonl"
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2]
    assert all(line["score"] in (0.0, 1.0) and isinstance(line["output"], str) for line in lines)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["score"]["count"] == 3 and metrics["generations"]["made"] > 0

    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines[:1]))  # as if killed after one
    resumed = cli.invoke(app, ["run", str(path)])
    assert resumed.exit_code == 0, resumed.output
    again = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert again == lines
    resumed_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert resumed_metrics["attempts"] == 2
    assert resumed_metrics["generations"]["made"] == metrics["generations"]["made"], "the resume generated nothing"
