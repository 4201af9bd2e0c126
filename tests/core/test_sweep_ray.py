"""``moco sweep`` on a local Ray (CPU, 2 workers) with tiny Hugging Face models and real scorers."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import get_registry

pytest.importorskip("ray")
pytestmark = pytest.mark.slow
cli = CliRunner()


@pytest.fixture(autouse=True)
def needs_evals():
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")


def mc_data(path, n_dev=2, n_test=3):
    def item(i, split):
        choices = {"A": "1", "B": "2", "C": "3", "D": "4"}
        return {
            "id": f"{split}{i}",
            "question": f"{split} {i}: which is {i % 4 + 1}?",
            "choices": choices,
            "answer": "ABCD"[i % 4],
        }

    data = {"name": path.stem, "task_type": "multiple_choice"}
    data["dev"] = [item(i, "dev") for i in range(n_dev)]
    data["test"] = [item(i, "test") for i in range(n_test)]
    path.write_text(json.dumps(data))
    return path


def sweep_file(tmp_path, paths, out, executor):
    body = {
        "base": {"generation": {"max_new_tokens": 4, "batch_size": 4, "seed": 1}, "hardware": {"device": "cpu"}},
        "methods": ["single_model", {"method": "majority_vote", "params": {"samples_per_model": 2}}],
        "datasets": [{"path": str(mc_data(tmp_path / "mc.json"))}, {"path": str(tmp_path / "absent.json")}],
        "pools": [{"name": "tiny", "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(paths[:2])]}],
        "output_dir": str(out),
        "cache_dir": str(tmp_path / "cache"),
        "executor": executor,
        "ray": {"num_cpus": 2},
    }
    path = tmp_path / f"{executor}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def outputs(cell_dir):
    return [json.loads(line)["output"] for line in (cell_dir / "predictions.jsonl").read_text().splitlines()]


def test_ray_sweep_brings_results_back_and_matches_a_local_sweep(tmp_path, tiny_pool_paths):
    result = cli.invoke(app, ["sweep", str(sweep_file(tmp_path, tiny_pool_paths, tmp_path / "ray", "ray"))])
    assert result.exit_code == 1, result.output
    found = dict((m[2], m[1]) for m in re.finditer(r"^(\w+)\s+(\S+--s1)", result.output, re.M))
    assert found == {
        "tiny--single_model--mc--s1": "done",
        "tiny--majority_vote--mc--s1": "done",
        "tiny--single_model--absent--s1": "failed",
        "tiny--majority_vote--absent--s1": "failed",
    }
    cells = tmp_path / "ray" / "cells"
    vote = cells / "tiny--majority_vote--mc--s1"
    assert json.loads((vote / "metrics.json").read_text())["score"]["count"] == 3
    assert yaml.safe_load((vote / "config.yaml").read_text())["output_dir"] == str(vote)
    assert "cell started" in (vote / "run.log").read_text()
    assert "absent.json" in json.loads((cells / "tiny--single_model--absent--s1" / "error.json").read_text())["error"]
    assert (tmp_path / "cache" / "generations.sqlite").is_file()

    local = cli.invoke(app, ["sweep", str(sweep_file(tmp_path, tiny_pool_paths, tmp_path / "local", "local"))])
    assert local.exit_code == 1
    for name in ("tiny--single_model--mc--s1", "tiny--majority_vote--mc--s1"):
        assert outputs(cells / name) == outputs(tmp_path / "local" / "cells" / name)
    made = json.loads((tmp_path / "local" / "cells" / "tiny--single_model--mc--s1" / "metrics.json").read_text())
    assert made["generations"]["made"] == 0, "the local sweep reads what the Ray workers cached"
