"""Outputs that explain themselves: gold and extracted answers and the prompt per line, provenance in metrics."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from importlib.metadata import version

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.provenance import device_info, git_state
from moco_core.testing import (
    scripted_plugins,
    set_responder,
)

cli = CliRunner()


@pytest.fixture()
def finished_run(fresh_cache_dir, tmp_path, monkeypatch):
    """A scripted majority-vote run on the ``letter`` task type, started from inside a git repository."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "notes.txt").write_text("x")
    subprocess.run(["git", "add", "notes.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    items = [
        {"id": f"q{i}", "question": f"question {i}", "choices": {"A": "x", "B": "y"}, "answer": "AB"[i % 2]}
        for i in range(4)
    ]
    data = tmp_path / "letters.json"
    data.write_text(json.dumps({"task_type": "letter", "dev": items[:1], "test": items}))
    config = {
        "method": "majority_vote",
        "params": {"tie_break": "dev"},
        "models": [{"name": n, "path": p, "backend": "scripted"} for n, p in (("a", "prov-A"), ("b", "prov-A2"))],
        "dataset": {"path": str(data)},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    set_responder("prov-A", "A because")
    set_responder("prov-A2", "A.")
    with scripted_plugins():
        result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    return tmp_path / "run", repo


def test_each_prediction_line_carries_prompt_gold_and_extracted_answer(finished_run):
    run_dir, _ = finished_run
    lines = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [line["gold"] for line in lines] == ["A", "B", "A", "B"]
    assert all(line["extracted"] == "A" for line in lines)
    assert [line["score"] for line in lines] == [1.0, 0.0, 1.0, 0.0]
    assert lines[1]["prompt"] == "question 1"  # the letter task type's prompt is the question itself


def test_metrics_record_provenance(finished_run):
    run_dir, repo = finished_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    provenance = metrics["provenance"]
    assert datetime.fromisoformat(provenance["timestamp"]).tzinfo is not None
    assert provenance["moco"] == version("moco-core")
    assert provenance["plugins"]["moco-core"] == version("moco-core")
    assert provenance["libraries"]["torch"] == version("torch")
    assert set(provenance["libraries"]) >= {"transformers", "datasets", "mergekit", "math-verify"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert provenance["git"] == {"commit": head, "dirty": False, "folder": str(repo.resolve())}
    assert provenance["hardware"]["device"] == metrics["hardware"]["device"]
    assert provenance["models"]["a"] == {"backend": "scripted", "path": "prov-A"}
    fingerprint = json.loads((run_dir / "fingerprint.json").read_text())
    assert provenance["data"] == fingerprint and len(fingerprint["data"]) == 64
    assert provenance["python"].count(".") == 2


def test_git_state_outside_a_repository_and_of_a_changed_tree(finished_run, tmp_path_factory):
    _, repo = finished_run
    (repo / "notes.txt").write_text("changed")
    assert git_state(repo)["dirty"] is True
    assert git_state(tmp_path_factory.mktemp("plain")) is None
    assert device_info("cpu")["gpu"] is None
