"""Training methods on tiny models through ``moco run``: a few steps, then reused on a second run.

A ``loose`` task type (the answer is a response's first character) gives random tiny models
answers to agree on, so consensus, hard sets and preferences exist and training really runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.hookspecs import hookimpl
from moco_core.registry import ScorerSpec
from moco_core.testing import registered_plugin
from moco_core.types import Generation

pytestmark = pytest.mark.slow
cli = CliRunner()


def first_char(example, output: str) -> str:
    return output.strip()[:1] or "_"


class LooseTaskType:
    @hookimpl
    def moco_register_scorers(self, register):
        register(
            ScorerSpec(
                task_type="loose",
                prompt=lambda e: f"Question: {e.question}\nAnswer with one letter.",
                extract=first_char,
                score=lambda examples, outputs, options=None: [
                    float(first_char(e, o) == e.answer) for e, o in zip(examples, outputs, strict=True)
                ],
            )
        )


@pytest.fixture()
def loose(fresh_cache_dir):
    with registered_plugin(LooseTaskType(), "loose"):
        yield


def run(tmp_path: Path, pool: list[Path], method: str, params: dict, out: str, n_dev: int = 4) -> dict:
    def item(split: str, i: int) -> dict:
        return {"id": f"{split}{i}", "input": f"{split} item {i}: 2 + {i} is", "output": "T"}

    data = tmp_path / "data.json"
    body = {"name": "loose", "task_type": "loose", "dev": [item("dev", i) for i in range(n_dev)]}
    data.write_text(json.dumps({**body, "test": [item("test", i) for i in range(2)]}))
    config = {
        "method": method,
        "params": params,
        "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(pool)],
        "dataset": {"path": str(data)},
        "generation": {"max_new_tokens": 4, "temperature": 1.0, "seed": 2, "batch_size": 8},
        "hardware": {"device": "cpu"},
        "output_dir": str(tmp_path / out),
    }
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    return json.loads((tmp_path / out / "metrics.json").read_text())


def reused_without_training(tmp_path, pool, method, params, monkeypatch) -> dict:
    import moco_core.training_run

    def refuse(*args, **kwargs):
        raise AssertionError("trained again instead of reusing the finished job")

    monkeypatch.setattr(moco_core.training_run, "run_trainer", refuse)
    return run(tmp_path, pool, method, params, "again")


def test_multiagent_finetuning_trains_agents_and_reuses_them(tmp_path, loose, tiny_pool_paths, monkeypatch):
    metrics = run(tmp_path, tiny_pool_paths, "multiagent_finetuning", {}, "run")
    jobs = metrics["training_jobs"]
    assert jobs and all(job["rows"] > 0 and Path(job["output"]).is_dir() for job in jobs)
    agents = metrics["finetuning"]
    assert any(name.endswith("@gen1") for name in agents["generators"].values()), agents
    assert any(name.endswith("@critic1") for name in agents["critics"].values()), agents
    again = reused_without_training(tmp_path, tiny_pool_paths, "multiagent_finetuning", {}, monkeypatch)
    assert [job["output"] for job in again["training_jobs"]] == [job["output"] for job in jobs]


def test_agglm_trains_an_aggregator_with_grpo_and_reuses_it(tmp_path, loose, tiny_pool_paths, monkeypatch):
    metrics = run(tmp_path, tiny_pool_paths, "agglm", {"samples": 2}, "run")
    agglm = metrics["agglm"]
    assert agglm["sets"] == 8 and agglm["easy_kept"] <= agglm["hard"]
    (job,) = metrics["training_jobs"]
    assert job["rows"] == agglm["hard"] + agglm["easy_kept"] and Path(job["output"]).is_dir()
    assert agglm["aggregator"] == f"{agglm['base']}@agglm"
    again = reused_without_training(tmp_path, tiny_pool_paths, "agglm", {"samples": 2}, monkeypatch)
    assert again["training_jobs"][0]["output"] == job["output"]


def test_llm_blender_trains_ranker_and_fuser_and_reuses_them(tmp_path, loose, tiny_pool_paths, monkeypatch):
    params = {"train_ranker": True, "train_fuser": True, "top_k": 2, "epochs": 1}
    metrics = run(tmp_path, tiny_pool_paths, "llm_blender", params, "run")
    jobs = {job["job"]: job for job in metrics["training_jobs"]}
    assert set(jobs) <= {"ranker", "fuser"} and "fuser" in jobs and jobs["fuser"]["rows"] == 4
    assert metrics["fuser"].endswith("@fuser") and metrics["fuser"].startswith(metrics["dev_best_model"])
    again = reused_without_training(tmp_path, tiny_pool_paths, "llm_blender", params, monkeypatch)
    assert [job["output"] for job in again["training_jobs"]] == [job["output"] for job in metrics["training_jobs"]]


class LengthJudge:
    """Answers Sparta's judge prompts (random tiny models cannot write JSON): longer is better."""

    @hookimpl(tryfirst=True)
    def moco_generate(self, model, requests, settings):
        if not all("Response to be evaluated" in r.prompt for r in requests):
            return None
        scores = [1 + len(r.prompt.split("Response to be evaluated: ")[1].split("\n")[0]) % 10 for r in requests]
        return [Generation(text=f'{{"score": {s}}}') for s in scores]


@pytest.mark.parametrize(
    "selection", [{}, {"instruction_selection": "exp3_per_model", "opponent_selection": "schedule"}]
)
def test_sparta_trains_every_member_by_dpo_and_reuses_adapters(
    tmp_path, loose, tiny_pool_paths, monkeypatch, selection
):
    params = {"iterations": 2, "instructions": 4, **selection}
    with registered_plugin(LengthJudge(), "judge"):
        metrics = run(tmp_path, tiny_pool_paths, "sparta", params, "run")
        sparta = metrics["sparta"]
        first, second = sparta["iterations"]
        assert first["duels"] == 4 and first["preference_pairs"] > 0
        assert first["trained"] == ["m0@sparta1", "m1@sparta1", "m2@sparta1"]
        assert len(sparta["candidates"]) == 3 + len(first["trained"]) + len(second["trained"])
        best = max(c["dev_score"] for c in sparta["candidates"])
        assert sparta["chosen"]["dev_score"] == best
        assert any(r != 100.0 for r in first["ratings"].values())
        again = reused_without_training(tmp_path, tiny_pool_paths, "sparta", params, monkeypatch)
    assert [j["output"] for j in again["training_jobs"]] == [j["output"] for j in metrics["training_jobs"]]
