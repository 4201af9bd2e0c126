"""``moco sweep`` with the local executor: expansion, skipping, shared cache, failures, retries."""

from __future__ import annotations

import csv
import json
import math
import re
import sys

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.hookspecs import hookimpl
from moco_core.registry import BackendSpec
from moco_core.runner import run
from moco_core.sweep import expand, load_sweep
from moco_core.testing import (
    ScriptedBackend,
    ScriptedBackendPlugin,
    ScriptedTaskTypesPlugin,
    registered_plugin,
    set_responder,
)

cli = CliRunner()


@pytest.fixture()
def scripted(fresh_cache_dir):
    with registered_plugin(ScriptedBackendPlugin(), "scripted"), registered_plugin(ScriptedTaskTypesPlugin(), "letter"):
        ScriptedBackend.calls.clear()
        set_responder("always-A", "A because")
        set_responder("always-B", "B!")
        set_responder("always-A2", "A.")
        yield


def letters(path, n_test=4, n_dev=3, answer="A"):
    def item(i, split):
        return {"id": f"{split}{i}", "question": f"{path.stem} {split} {i}", "choices": {"A": "x", "B": "y"}}

    data = {"name": path.stem, "task_type": "letter"}
    data["dev"] = [{**item(i, "dev"), "answer": answer} for i in range(n_dev)]
    data["test"] = [{**item(i, "test"), "answer": answer} for i in range(n_test)]
    path.write_text(json.dumps(data))
    return path


def model(name, path):
    return {"name": name, "path": path, "backend": "scripted", "description": f"model {name}"}


def write_sweep(tmp_path, datasets, **changes):
    body = {
        "base": {"generation": {"batch_size": 2, "max_new_tokens": 8}},
        "methods": [
            "single_model",
            "majority_vote",
            {"method": "majority_vote", "label": "mv-dev", "params": {"tie_break": "dev"}},
        ],
        "datasets": [{"path": str(d)} for d in datasets],
        "pools": [
            {"name": "good", "models": [model("a", "always-A"), model("b", "always-B"), model("a2", "always-A2")]},
            {"name": "bad", "models": [model("b", "always-B"), model("a", "always-A")]},
        ],
        "output_dir": str(tmp_path / "sweep"),
        "cache_dir": str(tmp_path / "shared-cache"),
        **changes,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def states(output: str) -> dict[str, str]:
    found = (re.match(r"(\w+)\s+(\S+--s\d+)", line) for line in output.splitlines())
    return {match[2]: match[1] for match in found if match}


def test_grid_expands_pool_by_pool_with_one_directory_per_cell(scripted, tmp_path):
    data = [letters(tmp_path / "one.json"), letters(tmp_path / "two.json")]
    sweep_file = write_sweep(tmp_path, data, seeds=[3, 4])
    cells = expand(load_sweep(sweep_file), tmp_path / "sweep")
    assert len(cells) == 3 * 2 * 2 * 2
    assert [c.pool for c in cells] == ["good"] * 12 + ["bad"] * 12
    assert cells[0].name == "good--single_model--one--s3"
    assert cells[2].config.params == {"tie_break": "dev"} and cells[2].method == "mv-dev"
    assert {c.config.generation.seed for c in cells} == {3, 4}
    assert all(c.config.generation.batch_size == 2 for c in cells)
    assert len({c.directory for c in cells}) == len(cells)
    result = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert set(states(result.output).values()) == {"pending"}
    assert "24 cells" in result.output and "24 pending" in result.output
    assert not (tmp_path / "sweep").exists()


def test_sweep_runs_every_cell_shares_the_cache_and_skips_finished_cells(scripted, tmp_path):
    data = [letters(tmp_path / "one.json"), letters(tmp_path / "two.json", answer="B")]
    sweep_file = write_sweep(tmp_path, data)
    result = cli.invoke(app, ["sweep", str(sweep_file)])
    assert result.exit_code == 0, result.output
    assert list(states(result.output).values()) == ["done"] * 12
    root = tmp_path / "sweep" / "cells"
    single = json.loads((root / "good--single_model--one--s0" / "metrics.json").read_text())
    vote = json.loads((root / "good--majority_vote--one--s0" / "metrics.json").read_text())
    assert single["score"]["mean"] == 1.0 and single["generations"]["made"] > 0
    assert vote["generations"]["made"] == 0, "the vote reuses the single-model cell's generations"
    assert json.loads((root / "good--majority_vote--two--s0" / "metrics.json").read_text())["score"]["mean"] == 0.0
    info = json.loads((root / "bad--mv-dev--two--s0" / "cell.json").read_text())
    assert info == {**info, "method": "mv-dev", "method_key": "majority_vote", "pool": "bad", "dataset": "two"}
    assert (tmp_path / "shared-cache" / "generations.sqlite").is_file()
    assert "cell started" in (root / "good--single_model--one--s0" / "run.log").read_text()
    assert (tmp_path / "sweep" / "sweep.yaml").is_file()

    ScriptedBackend.calls.clear()
    again = cli.invoke(app, ["sweep", str(sweep_file)])
    assert again.exit_code == 0 and "ran 0" in again.output and "12 done" in again.output
    assert ScriptedBackend.calls == []


def test_failed_cell_is_recorded_the_sweep_goes_on_and_retry_reruns_only_it(scripted, tmp_path):
    good = letters(tmp_path / "one.json")
    missing = tmp_path / "late.json"
    sweep_file = write_sweep(
        tmp_path,
        [good, missing],
        methods=["single_model"],
        pools=[{"name": "p", "models": [model("a", "always-A"), model("b", "always-B")]}],
    )
    result = cli.invoke(app, ["sweep", str(sweep_file)])
    assert result.exit_code == 1
    assert states(result.output) == {"p--single_model--one--s0": "done", "p--single_model--late--s0": "failed"}
    error = json.loads((tmp_path / "sweep" / "cells" / "p--single_model--late--s0" / "error.json").read_text())
    assert "late.json" in error["error"] and error["traceback"]
    assert "--retry-failed" in result.output

    listing = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
    assert "1 done, 1 failed" in listing.output
    rerun = cli.invoke(app, ["sweep", str(sweep_file)])
    assert "ran 0" in rerun.output, "a failed cell waits for --retry-failed"

    finished = tmp_path / "sweep" / "cells" / "p--single_model--one--s0" / "metrics.json"
    finished_at = finished.stat().st_mtime_ns
    letters(missing)
    retried = cli.invoke(app, ["sweep", str(sweep_file), "--retry-failed"])
    assert retried.exit_code == 0, retried.output
    assert states(retried.output) == {"p--single_model--late--s0": "done"}
    assert not (tmp_path / "sweep" / "cells" / "p--single_model--late--s0" / "error.json").exists()
    assert finished.stat().st_mtime_ns == finished_at


def test_a_partial_cell_resumes(scripted, tmp_path):
    data = letters(tmp_path / "one.json", n_test=4)
    sweep_file = write_sweep(
        tmp_path,
        [data],
        methods=["single_model"],
        pools=[{"name": "p", "models": [model("a", "always-A"), model("b", "always-B")]}],
    )
    cell = tmp_path / "sweep" / "cells" / "p--single_model--one--s0"
    assert cli.invoke(app, ["sweep", str(sweep_file)]).exit_code == 0
    lines = (cell / "predictions.jsonl").read_text().splitlines()
    (cell / "predictions.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (cell / "metrics.json").unlink()
    listing = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
    assert states(listing.output) == {"p--single_model--one--s0": "partial"}
    assert cli.invoke(app, ["sweep", str(sweep_file)]).exit_code == 0
    indexes = [json.loads(line)["index"] for line in (cell / "predictions.jsonl").read_text().splitlines()]
    assert indexes == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base": {"method": "majority_vote"}}, "base: Value error, 'method' comes from the axes"),
        ({"methods": ["majority_vot"]}, "unknown method 'majority_vot' (did you mean 'majority_vote'?)"),
        ({"methods": [{"method": "majority_vote", "params": {"tie_break": "coin"}}]}, "params: tie_break"),
        ({"methods": ["majority_vote", "majority_vote"]}, "'majority_vote' appears twice"),
        ({"executor": "slurm"}, "executor"),
        ({"pools": [{"name": "p", "models": [model("a", "always-A")]}], "methods": ["prompt_routing"]}, "models:"),
        ({"controls": "budget_matched"}, "controls.kind"),
        ({"controls": {"kind": "compute_matched", "max_samples": 0}}, "controls.max_samples"),
        (
            {"controls": "compute_matched", "methods": [{"method": "majority_vote", "label": "control-sc-2"}]},
            "'control-sc-2'",
        ),
    ],
)
def test_bad_sweep_is_one_line_before_any_cell_runs(scripted, tmp_path, change, message):
    sweep_file = write_sweep(tmp_path, [letters(tmp_path / "one.json")], **change)
    result = cli.invoke(app, ["sweep", str(sweep_file)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "sweep").exists()


def test_ray_cells_ask_for_one_gpu_per_distinct_local_model(tmp_path):
    from moco_core.sweep.config import RayConfig
    from moco_core.sweep.ray_executor import gpus_for

    hf = [{"name": n, "path": p} for n, p in (("a", "org/x"), ("b", "org/y"), ("a2", "org/x"), ("c", "org/z"))]
    remote = [{"name": "r", "path": "gpt", "backend": "openai"}]
    sweep_file = write_sweep(
        tmp_path,
        [tmp_path / "one.json"],
        methods=["majority_vote"],
        pools=[{"name": "hf", "models": hf}, {"name": "mixed", "models": [hf[0], *remote]}],
    )
    sweep = load_sweep(sweep_file)
    local, mixed = expand(sweep, tmp_path / "sweep")
    assert gpus_for(local, RayConfig(), cluster_gpus=8) == 3
    assert gpus_for(local, RayConfig(), cluster_gpus=2) == 2
    assert gpus_for(mixed, RayConfig(), cluster_gpus=8) == 1
    assert gpus_for(local, RayConfig(), cluster_gpus=0) == 0
    assert gpus_for(local, RayConfig(gpus_per_cell=0.5), cluster_gpus=8) == 0.5
    capped = expand(sweep.model_copy(update={"base": {"hardware": {"max_resident_models": 1}}}), tmp_path / "s")[0]
    assert gpus_for(capped, RayConfig(), cluster_gpus=8) == 1
    on_cpu = expand(sweep.model_copy(update={"base": {"hardware": {"device": "cpu"}}}), tmp_path / "s")[0]
    assert gpus_for(on_cpu, RayConfig(), cluster_gpus=8) == 0


def test_ray_waves_start_one_cell_per_pool_and_dataset_first(scripted, tmp_path):
    from moco_core.sweep.ray_executor import waves

    sweep_file = write_sweep(tmp_path, [tmp_path / "one.json", tmp_path / "two.json"])
    cells = expand(load_sweep(sweep_file), tmp_path / "sweep")
    first, followers = waves(cells)
    assert [c.name for c in first] == [
        "good--single_model--one--s0",
        "good--single_model--two--s0",
        "bad--single_model--one--s0",
        "bad--single_model--two--s0",
    ]
    assert [c.name for c in followers["good--single_model--two--s0"]] == [
        "good--majority_vote--two--s0",
        "good--mv-dev--two--s0",
    ]
    assert sorted(c.name for c in first + [f for group in followers.values() for f in group]) == sorted(
        c.name for c in cells
    )


def test_executor_choice_is_checked_and_a_missing_ray_is_one_line(scripted, tmp_path, monkeypatch):
    sweep_file = write_sweep(tmp_path, [letters(tmp_path / "one.json")], methods=["single_model"])
    result = cli.invoke(app, ["sweep", str(sweep_file), "--executor", "slurm"])
    assert result.exit_code == 2 and "--executor: expected local or ray" in result.output
    monkeypatch.setitem(sys.modules, "ray", None)
    result = cli.invoke(app, ["sweep", str(sweep_file), "--executor", "ray"])
    assert result.exit_code == 2, result.output
    assert "ray is not installed (pip install 'moco-core[ray]')" in result.output


def test_local_sweep_loads_each_pool_model_once_across_methods(scripted, tmp_path, tiny_pool_paths, monkeypatch):
    from moco_core.backends.hf import HFBackend
    from moco_core.sweep.cell_run import run_cell

    loads = []
    original = HFBackend.load

    def counting(self, path, *args, **kwargs):
        loads.append(path)
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(HFBackend, "load", counting)
    data = letters(tmp_path / "one.json", n_test=3, n_dev=2)
    models = [{"name": f"m{i}", "path": str(p), "description": f"tiny {i}"} for i, p in enumerate(tiny_pool_paths[:2])]
    base = {"generation": {"batch_size": 2, "max_new_tokens": 4, "seed": 1}, "hardware": {"device": "cpu"}}
    sweep_file = write_sweep(
        tmp_path,
        [data],
        base=base,
        methods=["single_model", {"method": "majority_vote", "params": {"samples_per_model": 2}}],
        pools=[{"name": "tiny", "models": models}],
    )
    result = cli.invoke(app, ["sweep", str(sweep_file)])
    assert result.exit_code == 0, result.output
    assert list(states(result.output).values()) == ["done"] * 2
    assert len(loads) == 2 and len(set(loads)) == 2, loads  # each model loaded once for both methods

    # The same cells run one by one, each with its own pool, into another folder and cache.
    for cell in expand(load_sweep(sweep_file), tmp_path / "sweep"):
        alone = {**cell.config.model_dump(mode="json"), "output_dir": str(tmp_path / "alone" / cell.name)}
        assert run_cell(alone, str(tmp_path / "alone-cache"))["state"] == "done"
        shared_dir, alone_dir = cell.directory, tmp_path / "alone" / cell.name
        assert (shared_dir / "predictions.jsonl").read_text() == (alone_dir / "predictions.jsonl").read_text()
        shared, single = (json.loads((d / "metrics.json").read_text()) for d in (shared_dir, alone_dir))
        for metrics in (shared, single):
            metrics.pop("wall_time_s")
            metrics.pop("provenance")
        assert shared == single
        assert shared["generations"]["made"] + shared["generations"]["cached"] > 0
    assert len(loads) == 2 + 4, "separate runs load every model per cell"


def test_shared_pool_is_reused_clean_and_rebuilt_when_a_cell_changed_it(scripted, tmp_path):
    from moco_core.cache import GenerationCache
    from moco_core.config import ModelConfig
    from moco_core.plugins import get_registry
    from moco_core.sweep.pools import SharedPools

    cells = expand(load_sweep(write_sweep(tmp_path, [letters(tmp_path / "one.json")])), tmp_path / "sweep")
    good, bad = cells[0].config, cells[-1].config
    backends = get_registry().backends
    pools = SharedPools()

    def take(config):
        return pools.acquire(config, GenerationCache(enabled=False), backends, None)

    pool = take(good)
    pool.load("a")
    pool.stats.made = 5
    pool.add(ModelConfig(name="merged", path="always-B", backend="scripted"))
    pool.load("merged")
    pools.release(pool, good, ok=True)
    assert pool.names == ["a", "b", "a2"], "a member the method added does not reach the next cell"
    again = take(good)
    assert again is pool and pools.built == 1 and again.stats.made == 0 and again.resident() == ["always-A"]

    again.set_in_memory(ModelConfig(name="a", path="always-A", backend="scripted"), {"recipe": 1}, lambda _m: None)
    pools.release(again, good, ok=True)
    assert again.resident() == [], "swapped weights close the pool"
    third = take(good)
    assert third is not again and pools.built == 2 and third.config("a").description == "model a"

    pools.release(third, good, ok=False)  # a failed cell's pool is not trusted
    fourth = take(good)
    assert fourth is not third and pools.built == 3
    fourth._adapters[("scripted", "work/trained-adapter")] = (("scripted", "always-A"), None)  # PEFT in a base
    pools.release(fourth, good, ok=True)
    fifth = take(good)
    assert fifth is not fourth and pools.built == 4, "an adapter loaded into a resident base closes the pool"
    pools.release(fifth, good, ok=True)
    assert take(bad) is not fifth and pools.built == 5, "another pool config builds its own pool"
    pools.close()


class CountingBackend(ScriptedBackend):
    """The scripted backend reporting one generated token per word of each answer."""

    def generate(self, handle, requests, settings, batch_size):
        found = super().generate(handle, requests, settings, batch_size)
        for generation in found:
            generation.tokens = len(generation.text.split())
        return found


class CountingBackendPlugin:
    @hookimpl
    def moco_register_backends(self, register):
        implementation = f"{__name__}:CountingBackend"
        register(BackendSpec(key="counting", implementation=implementation, summary="test", local_paths=False))


def counted(name, path):
    return {"name": name, "path": path, "backend": "counting"}


def test_compute_matched_controls_run_at_each_methods_token_budget_and_resume(scripted, tmp_path):
    with registered_plugin(CountingBackendPlugin(), "counting"):
        data = letters(tmp_path / "one.json", n_test=4, n_dev=3)
        pool = {
            "name": "good",
            "models": [counted("a", "always-A"), counted("b", "always-B"), counted("a2", "always-A2")],
        }
        methods = ["majority_vote", {"method": "majority_vote", "label": "mv-dev", "params": {"tie_break": "dev"}}]
        controls = {"kind": "compute_matched", "max_samples": 8}
        sweep_file = write_sweep(tmp_path, [data], methods=methods, pools=[pool], controls=controls)
        planned = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
        assert planned.exit_code == 0, planned.output
        assert "after    good--control-sc-N--one--s0" in planned.output and "1 control groups after" in planned.output

        result = cli.invoke(app, ["sweep", str(sweep_file)])
        assert result.exit_code == 0, result.output
        # Each vote asks all three models every dev and test item ("A because", "B!", "A.": 2 + 1 + 1 tokens);
        # the control's dev pass costs the same 3 x 4 tokens, then the dev-best "a" spends 2 a sample.
        method_tokens = (3 + 4) * (2 + 1 + 1) / 4
        dev_pass = 3 * (2 + 1 + 1) / 4
        samples = math.floor((method_tokens - dev_pass) / 2 + 0.5)
        name = f"good--control-sc-{samples}--one--s0"
        assert states(result.output) == {
            "good--majority_vote--one--s0": "done",
            "good--mv-dev--one--s0": "done",
            name: "done",
        }
        cell = tmp_path / "sweep" / "cells" / name
        assert yaml.safe_load((cell / "config.yaml").read_text())["params"] == {"samples": samples}
        assert json.loads((cell / "cell.json").read_text())["control_for"] == ["majority_vote", "mv-dev"]
        assert json.loads((cell / "metrics.json").read_text())["model"] == "a"

        ScriptedBackend.calls.clear()
        again = cli.invoke(app, ["sweep", str(sweep_file)])
        assert again.exit_code == 0 and "ran 0" in again.output and "3 done" in again.output
        assert ScriptedBackend.calls == []
        listing = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
        assert states(listing.output)[name] == "done" and "after" not in listing.output

        report = cli.invoke(app, ["report", str(tmp_path / "sweep")])
        assert report.exit_code == 0, report.output
        rows = list(csv.DictReader((tmp_path / "sweep" / "report" / "controls.csv").open()))
        row = next(r for r in rows if r["method"] == "majority_vote")
        control_tokens = dev_pass + samples * 2
        assert row["control"] == f"control-sc-{samples}" and float(row["tokens/item"]) == method_tokens
        assert float(row["control tokens/item"]) == control_tokens
        assert float(row["gain"]) == float(row["score"]) - float(row["control score"])


def test_a_control_with_one_sample_measures_the_best_models_tokens_when_no_method_did(scripted, tmp_path):
    with registered_plugin(CountingBackendPlugin(), "counting"):
        data = letters(tmp_path / "one.json", n_test=4, n_dev=3)
        pool = {"name": "p", "models": [counted("a", "always-A"), counted("b", "always-B")]}
        sweep_file = write_sweep(tmp_path, [data], methods=["majority_vote"], pools=[pool], controls="compute_matched")
        method = tmp_path / "sweep" / "cells" / "p--majority_vote--one--s0"
        cell = next(c for c in expand(load_sweep(sweep_file), tmp_path / "sweep") if c.name == method.name)
        run(cell.config)
        metrics = json.loads((method / "metrics.json").read_text())
        del metrics["dev_best_single"]  # as a method that never ranks the models on dev
        (method / "metrics.json").write_text(json.dumps(metrics))

        result = cli.invoke(app, ["sweep", str(sweep_file)])
        assert result.exit_code == 0, result.output
        # The probe samples once from the dev-best "a" ("A because": 2 tokens) after its dev pass
        # (3 items x (2 + 1) tokens); the vote spends (3 dev + 4 test) x (2 + 1) tokens over 4 items.
        samples = math.floor(((3 + 4) * (2 + 1) / 4 - 3 * (2 + 1) / 4) / 2 + 0.5)
        ran = list(states(result.output))
        assert ran == ["p--control-sc-1--one--s0", f"p--control-sc-{samples}--one--s0"], "the probe runs first"
        again = cli.invoke(app, ["sweep", str(sweep_file)])
        assert "ran 0" in again.output and "3 done" in again.output
