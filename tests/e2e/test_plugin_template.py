"""The plugin template, pip-installed for real, is found through its entry point and runs via the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from moco_core.plugins import get_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "plugins" / "moco-plugin-template"
MOCO = Path(sys.executable).parent / "moco"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed_template(tmp_path_factory) -> Path:
    """The template installed with pip into a private folder (built from a copy: no build/ in the repo)."""
    work = tmp_path_factory.mktemp("template")
    source = work / "source"
    shutil.copytree(TEMPLATE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    target = work / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*command, "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return target


def moco(args: list[str], site: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MOCO_LOAD_PLUGINS", "MOCO_STRICT_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MOCO_CACHE_DIR=str(cache))
    return subprocess.run([str(MOCO), *args], capture_output=True, text=True, env=env, timeout=300)


def test_list_methods_shows_the_installed_template(installed_template, tmp_path):
    done = moco(["list-methods", "--json"], installed_template, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    methods = {m["key"]: m for m in listing["methods"]}
    assert methods["template_longest_answer"]["distribution"] == "moco-plugin-template"
    assert methods["template_longest_answer"]["level"] == "text"
    assert "template" not in listing["errors"]


def write_benchmark(path: Path) -> Path:
    def item(i: int, split: str) -> dict:
        question = f"{split} question {i}: which number is {i + 2}?"
        return {"id": f"{split}{i}", "question": question, "choices": {"A": str(i + 2), "B": str(i + 9)}, "answer": "A"}

    data = {
        "name": "tiny_mc",
        "task_type": "multiple_choice",
        "dev": [item(i, "dev") for i in range(3)],
        "test": [item(i, "test") for i in range(3)],
    }
    path.write_text(json.dumps(data))
    return path


@pytest.fixture()
def multiple_choice_scorer() -> None:
    """Skip, before any model is built, when no installed plugin scores ``multiple_choice``."""
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("the multiple_choice task type is not registered: install moco-evals")


def test_run_with_tiny_models(multiple_choice_scorer, installed_template, tiny_pool_paths, tmp_path):
    config = {
        "method": "template_longest_answer",
        "models": [{"name": f"tiny{i}", "path": str(path)} for i, path in enumerate(tiny_pool_paths[:2])],
        "dataset": {"path": str(write_benchmark(tmp_path / "tiny_mc.json"))},
        "generation": {"max_new_tokens": 4, "temperature": 0.0, "batch_size": 2},
        "hardware": {"device": "cpu", "dtype": "float32"},
        "output_dir": str(tmp_path / "run"),
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    done = moco(["run", str(config_file), "--limit", "2"], installed_template, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    assert all(line["chosen_model"] in ("tiny0", "tiny1") for line in lines)
    assert all(set(line["lengths"]) == {"tiny0", "tiny1"} for line in lines)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["method"] == "template_longest_answer"
    assert metrics["score"]["count"] == 2
    assert metrics["generations"]["made"] == 4


def test_installed_template_ships_its_example_dataset(installed_template, tmp_path):
    """The packaged data file is installed (package-data), so the dataset loads from the wheel."""
    done = moco(["list-datasets", "--json"], installed_template, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    datasets = {d["key"]: d for d in json.loads(done.stdout)["datasets"]}
    assert datasets["template_arithmetic"]["distribution"] == "moco-plugin-template"
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"index": 0, "output": "Answer: 42"}) + "\n")
    scored = moco(["score", "--dataset", "template_arithmetic", str(outputs)], installed_template, tmp_path / "cache")
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.splitlines()[-1] == "template_arithmetic test: mean 1.0000 count 1"
