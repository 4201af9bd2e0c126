"""Every registered dataset key runs through ``moco run`` on a tiny model (limit 2)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import get_registry
from moco_core.testing import build_tiny_reward_model

pytestmark = pytest.mark.slow
cli = CliRunner()


def dataset_keys() -> list[str]:
    return sorted(get_registry().datasets)


@pytest.fixture(scope="module")
def reward_model(tmp_path_factory):
    return build_tiny_reward_model(tmp_path_factory.mktemp("reward") / "tiny-reward")


@pytest.fixture()
def wildchat_offline(monkeypatch):
    """WildChat has no shared file: serve a few rows in its hub schema instead of the network."""
    from moco_evals import hub

    rows = [
        {
            "conversation_hash": f"h{i}",
            "conversation": [{"role": "user", "content": f"Tell me about topic {i}."}],
            "toxic": i == 1,
            "language": "English",
        }
        for i in range(6)
    ]
    monkeypatch.setattr(hub, "fetch_split", lambda *args, **kwargs: [dict(row) for row in rows])


@pytest.mark.parametrize("key", dataset_keys())
def test_dataset_runs_end_to_end(
    key, tmp_path, monkeypatch, fresh_cache_dir, bench_dir, tiny_pool_paths, reward_model, wildchat_offline
):
    monkeypatch.setenv("MOCO_DATA_DIR", str(bench_dir))
    spec = get_registry().datasets[key]
    config = {
        "method": "single_model",
        "models": [{"name": "tiny", "path": str(tiny_pool_paths[0])}],
        "dataset": {"name": key, "limit": 2},
        "generation": {"max_new_tokens": 4, "batch_size": 4},
        "hardware": {"device": "cpu"},
        "scoring": {"reward_model": str(reward_model), "device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == key
    assert metrics["task_type"] == spec.task_type
    assert metrics["domain"] == spec.domain
    assert metrics["score"]["count"] >= 1
    assert f"({spec.domain}; scorer {spec.task_type})" in result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert all(isinstance(line["score"], float) for line in lines)
