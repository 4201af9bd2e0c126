"""Method requirements on the task type are checked at plan time, so `validate` refuses what `run` would."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import get_registry
from moco_core.registry import Requirements
from moco_core.testing import ScriptedBackendPlugin, registered_plugin, scripted_plugins

cli = CliRunner()


def _config(tmp_path, method, dataset):
    config = {
        "method": method,
        "models": [{"name": "a", "path": "vote-a", "backend": "scripted"}],
        "dataset": dataset,
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_requirement_is_described():
    assert "answer extractor" in Requirements(needs_extractor=True).describe()
    assert "answer extractor" not in Requirements().describe()


@pytest.mark.parametrize(("task_type", "refused"), [("free", True), ("letter", False)])
def test_validate_refuses_a_voting_method_without_an_extractor(fresh_cache_dir, tmp_path, task_type, refused):
    if "majority_vote" not in get_registry().methods:
        pytest.skip("moco-methods-text is not installed")
    data = {"task_type": task_type, "dev": [], "test": [{"id": 1, "input": "hi", "output": "x"}]}
    (tmp_path / "d.json").write_text(json.dumps(data))
    config = _config(tmp_path, "majority_vote", {"path": str(tmp_path / "d.json")})
    with scripted_plugins("t"):
        result = cli.invoke(app, ["validate", str(config)])
    if refused:
        assert result.exit_code == 2, result.output
        assert "majority_vote" in result.output and "'free' has no answer extractor" in result.output
    else:
        assert result.exit_code == 0, result.output


def test_validate_refuses_majority_vote_on_humaneval(fresh_cache_dir, tmp_path, bench_dir):
    registry = get_registry()
    if "majority_vote" not in registry.methods or "humaneval" not in registry.datasets:
        pytest.skip("moco-methods-text or moco-evals is not installed")
    config = _config(tmp_path, "majority_vote", {"name": "humaneval", "data_dir": str(bench_dir), "limit": 2})
    with registered_plugin(ScriptedBackendPlugin(), "scripted"):
        result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    assert "'coding' has no answer extractor" in result.output
