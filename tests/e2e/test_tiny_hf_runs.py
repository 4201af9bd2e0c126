"""End to end through the real CLI on tiny Hugging Face models and the real moco-evals scorers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from moco_core.plugins import get_registry
from moco_core.testing import write_choice_dataset

MOCO = str(Path(sys.executable).parent / "moco")
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def needs_evals():
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")


def mc_data(tmp_path: Path, n_dev: int, n_test: int) -> Path:
    return write_choice_dataset(tmp_path / "tiny_mc.json", n_dev, n_test)


def config(tmp_path: Path, paths, data: Path, method: str, **extra) -> Path:
    models = [{"name": f"m{i}", "path": str(p), "description": f"tiny model number {i}"} for i, p in enumerate(paths)]
    body = {
        "method": method,
        "models": models,
        "dataset": {"path": str(data)},
        "generation": {"max_new_tokens": 6, "temperature": 0.7, "seed": 1, "batch_size": 4},
        "hardware": {"device": "cpu"},
        "output_dir": str(tmp_path / method),
        **extra,
    }
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def moco(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MOCO, *args], capture_output=True, text=True, env=env or os.environ.copy(), timeout=300)


def lines_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("method", "params"),
    [("majority_vote", {"tie_break": "dev", "samples_per_model": 2}), ("prompt_routing", {}), ("single_model", {})],
)
def test_method_runs_on_tiny_models(tmp_path, fresh_cache_dir, tiny_pool_paths, method, params):
    data = mc_data(tmp_path, 3, 5)
    path = config(tmp_path, tiny_pool_paths, data, method, params=params)
    result = moco("run", str(path))
    assert result.returncode == 0, result.stderr
    lines = lines_of(tmp_path / method)
    assert [line["index"] for line in lines] == list(range(5))
    assert all(line["score"] in (0.0, 1.0) for line in lines)
    metrics = json.loads((tmp_path / method / "metrics.json").read_text())
    assert metrics["score"]["count"] == 5
    assert metrics["generations"]["made"] > 0
    again = moco("run", str(path), "--output-dir", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    repeat = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert repeat["generations"]["made"] == 0
    assert [line["output"] for line in lines_of(tmp_path / "again")] == [line["output"] for line in lines]


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path, fresh_cache_dir, tiny_pool_paths):
    data = mc_data(tmp_path, 2, 80)
    path = config(tmp_path, tiny_pool_paths, data, "majority_vote", generation={"max_new_tokens": 24, "batch_size": 1})
    predictions = tmp_path / "majority_vote" / "predictions.jsonl"
    process = subprocess.Popen([MOCO, "run", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if predictions.is_file() and predictions.read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial = predictions.read_text().count("\n")
    assert 0 < partial < 80
    result = moco("run", str(path))
    assert result.returncode == 0, result.stderr
    indices = [line["index"] for line in lines_of(tmp_path / "majority_vote")]
    assert sorted(indices) == list(range(80))
    assert len(indices) == len(set(indices))


def test_greedy_soup_runs_through_the_cli(tmp_path, fresh_cache_dir, tiny_pool_paths):
    data = mc_data(tmp_path, 3, 3)
    path = config(tmp_path, tiny_pool_paths, data, "greedy_soup", generation={"max_new_tokens": 4, "batch_size": 4})
    result = moco("run", str(path))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "greedy_soup" / "metrics.json").read_text())
    assert metrics["soup"][0] == metrics["dev_best_single"]["model"]
    history = metrics["soup_history"]
    assert history[0]["candidate"] == metrics["soup"][0]
    assert sorted(step["candidate"] for step in history) == ["m0", "m1", "m2"]
    assert all(line["soup"] == metrics["soup"] for line in lines_of(tmp_path / "greedy_soup"))


def test_registered_dataset_key_reads_moco_data_dir(tmp_path, fresh_cache_dir, tiny_pool_paths, bench_dir):
    path = config(tmp_path, tiny_pool_paths[:1], tmp_path / "unused.json", "single_model")
    body = yaml.safe_load(path.read_text())
    body["dataset"] = {"name": "agieval_tiny", "limit": 2}
    path.write_text(yaml.safe_dump(body))
    env = {**os.environ, "MOCO_DATA_DIR": str(bench_dir)}
    result = moco("run", str(path), env=env)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "single_model" / "metrics.json").read_text())
    assert (metrics["dataset"], metrics["domain"], metrics["score"]["count"]) == ("agieval_tiny", "qa", 2)
    missing = moco("run", str(path), "--output-dir", str(tmp_path / "x"), env={**env, "MOCO_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 2 and "MOCO_DATA_DIR" in missing.stderr


def test_pool_with_another_tokenizer_is_refused_before_loading(tmp_path, tiny_pool_paths):
    from moco_core.testing import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=5)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["zzzz"] = len(tokenizer["model"]["vocab"]) + 10
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    path = config(tmp_path, [tiny_pool_paths[0], other], mc_data(tmp_path, 1, 1), "logit_fusion")
    result = moco("validate", str(path))
    assert result.returncode == 2
    assert "models[1].path: logit_fusion needs the same tokenizer as models[0]" in result.stderr
