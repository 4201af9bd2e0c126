"""What a researcher gets wrong or runs into with ``moco sweep``: damaged cell files, typos, resumed
cells' compute, and compute-matched controls on a backend without token counts."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.config import parse_config
from moco_core.runner import run
from moco_core.sweep.cell_run import run_cell_staged
from moco_core.sweep.transfer import read_cell_files
from moco_core.testing import (
    ScriptedBackend,
    assert_one_line_error,
    scripted_plugins,
    set_responder,
    write_letters_dataset,
)

cli = CliRunner()


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins():
        set_responder("qa-a", "A")
        set_responder("qa-b", "B")
        set_responder("qa-a2", "A!")
        yield


def model(name: str, path: str) -> dict:
    return {"name": name, "path": path, "backend": "scripted"}


def write_sweep(tmp_path, **changes) -> str:
    body = {
        "base": {"generation": {"batch_size": 2, "max_new_tokens": 8}},
        "methods": ["majority_vote"],
        "datasets": [{"path": str(write_letters_dataset(tmp_path, n_test=6, n_dev=3))}],
        "pools": [{"name": "trio", "models": [model("a", "qa-a"), model("b", "qa-b"), model("a2", "qa-a2")]}],
        "output_dir": str(tmp_path / "sweep"),
        **changes,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_a_damaged_metrics_file_is_listed_and_rewritten_from_the_predictions(scripted, tmp_path):
    sweep_file = write_sweep(tmp_path)
    assert cli.invoke(app, ["sweep", sweep_file]).exit_code == 0
    cell = tmp_path / "sweep" / "cells" / "trio--majority_vote--letters--s0"
    score = json.loads((cell / "metrics.json").read_text())["score"]
    (cell / "metrics.json").write_text('{"method": "majo')

    listing = cli.invoke(app, ["sweep", sweep_file, "--dry-run"])
    assert listing.exit_code == 0 and "Traceback" not in listing.output, listing.output
    assert "partial  trio--majority_vote--letters--s0" in listing.output and "damaged" in listing.output

    ScriptedBackend.calls.clear()
    rerun = cli.invoke(app, ["sweep", sweep_file])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads((cell / "metrics.json").read_text())["score"] == score
    assert ScriptedBackend.calls == [], "the predictions were kept: nothing is generated again"


def test_a_damaged_error_file_still_reads_as_a_failed_cell(scripted, tmp_path):
    sweep_file = write_sweep(tmp_path)
    cell = tmp_path / "sweep" / "cells" / "trio--majority_vote--letters--s0"
    cell.mkdir(parents=True)
    (cell / "error.json").write_text("{not json")
    listing = cli.invoke(app, ["sweep", sweep_file, "--dry-run"])
    assert listing.exit_code == 0 and "Traceback" not in listing.output, listing.output
    assert "failed   trio--majority_vote--letters--s0" in listing.output and "--retry-failed" in listing.output


def test_a_misspelled_dataset_key_is_refused_before_any_cell_runs(scripted, tmp_path):
    sweep_file = write_sweep(tmp_path, datasets=[{"name": "gsm9k"}])
    result = cli.invoke(app, ["sweep", sweep_file])
    assert_one_line_error(result, "datasets.0.name", "gsm9k", "did you mean 'gsm8k'")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"seed": [0]}, ("seed: unknown key", "did you mean 'seeds'")),
        ({"methods": [{"method": "majority_vote", "param": {}}]}, ("methods.0.param", "did you mean 'params'")),
        ({"controls": {"kind": "compute_matched", "max_sample": 2}}, ("controls.max_sample", "'max_samples'")),
    ],
)
def test_a_misspelled_sweep_key_names_the_key_it_meant(scripted, tmp_path, change, fragments):
    result = cli.invoke(app, ["sweep", write_sweep(tmp_path, **change), "--dry-run"])
    assert_one_line_error(result, *fragments)


def interrupted_run(tmp_path) -> dict:
    """A majority_vote run over 40 test items cut off after its first chunk of 32; returns its config."""
    crash = {"on": True}

    def flaky(request):
        if crash["on"] and request.prompt == "test question 35":
            raise RuntimeError("killed mid-run")
        return "A"

    set_responder("qa-flaky", flaky)
    config = {
        "method": "majority_vote",
        "models": [model("f", "qa-flaky"), model("b", "qa-b")],
        "dataset": {"path": str(write_letters_dataset(tmp_path, n_test=40, n_dev=3))},
        "generation": {"batch_size": 2, "max_new_tokens": 8},
        "output_dir": str(tmp_path / "resumed"),
    }
    with pytest.raises(RuntimeError):
        run(parse_config(config, "test"))
    assert (tmp_path / "resumed" / "predictions.jsonl").read_text().count("\n") == 32
    crash["on"] = False
    return config


EXPECTED = (3 + 40) * 2
"""Generations of that run: every member answers every dev and test item once."""


def test_a_resumed_run_counts_its_preparation_once(scripted, tmp_path):
    """The dev pass runs again on resume (from the cache); its generations were counted by the first attempt."""
    config = interrupted_run(tmp_path)
    resumed = run(parse_config(config, "test")).metrics
    fresh = run(parse_config({**config, "output_dir": str(tmp_path / "fresh")}, "test")).metrics
    assert resumed["attempts"] == 2
    for metrics in (resumed, fresh):
        assert metrics["generations"]["made"] + metrics["generations"]["cached"] == EXPECTED
        assert generations_counted(metrics) == EXPECTED


def generations_counted(metrics: dict) -> int:
    block = metrics["compute"]
    return sum(block["generations"].values()) + sum(block["cached_generations"].values())


def test_a_cell_resumed_on_a_ray_worker_adds_up_its_earlier_attempts(scripted, tmp_path):
    """A Ray task gets the cell's files (work/ stays behind, but not its attempts) and runs it in a fresh folder."""
    config = interrupted_run(tmp_path)
    result = run_cell_staged(config, read_cell_files(tmp_path / "resumed"), None)
    assert result["state"] == "done", result
    metrics = json.loads(result["files"]["metrics.json"])
    assert metrics["attempts"] == 2
    assert generations_counted(metrics) == EXPECTED
    assert "work/attempts.json" in result["files"], "the next resume (anywhere) adds up this attempt too"


def test_controls_without_token_counts_match_generations_including_the_dev_pass(scripted, tmp_path):
    """The scripted backend reports no token counts, so a control is sized in generations per test item;
    its own dev pass (every member answers every dev item) counts toward the budget as in token mode."""
    sweep_file = write_sweep(tmp_path, controls="compute_matched")
    result = cli.invoke(app, ["sweep", sweep_file])
    assert result.exit_code == 0, result.output
    cells = tmp_path / "sweep" / "cells"
    method = json.loads((cells / "trio--majority_vote--letters--s0" / "metrics.json").read_text())
    controls = [p for p in cells.iterdir() if "--control-sc-" in p.name]
    assert len(controls) == 1, [p.name for p in controls]
    control = json.loads((controls[0] / "metrics.json").read_text())

    def per_item(metrics):
        return (metrics["generations"]["made"] + metrics["generations"]["cached"]) / metrics["score"]["count"]

    assert per_item(method) == (3 * 3 + 6 * 3) / 6
    assert controls[0].name == "trio--control-sc-3--letters--s0"
    assert per_item(control) == per_item(method)


def test_a_sweep_whose_settings_changed_since_its_cells_ran_stops_in_one_line(scripted, tmp_path):
    assert cli.invoke(app, ["sweep", write_sweep(tmp_path)]).exit_code == 0
    changed = write_sweep(tmp_path, base={"generation": {"batch_size": 2, "max_new_tokens": 4}})
    listing = cli.invoke(app, ["sweep", changed, "--dry-run"])
    assert listing.exit_code == 0 and "changed  trio--majority_vote--letters--s0" in listing.output

    ScriptedBackend.calls.clear()
    result = cli.invoke(app, ["sweep", changed])
    assert_one_line_error(result, "trio--majority_vote--letters--s0", "different config", "output_dir")
    assert ScriptedBackend.calls == []
    assert not (tmp_path / "sweep" / "cells" / "trio--majority_vote--letters--s0" / "error.json").exists()


def test_a_cell_larger_than_the_local_ray_is_refused_instead_of_waiting_forever(scripted, tmp_path):
    pytest.importorskip("ray")
    sweep_file = write_sweep(tmp_path, executor="ray", ray={"num_cpus": 1, "cpus_per_cell": 2})
    result = cli.invoke(app, ["sweep", sweep_file])
    assert_one_line_error(result, "ray.cpus_per_cell", "2 CPUs per cell", "has 1")


def test_an_unreachable_ray_address_is_one_line_not_minutes_of_retries(scripted, tmp_path):
    pytest.importorskip("ray")
    result = cli.invoke(app, ["sweep", write_sweep(tmp_path), "--ray-address", "127.0.0.1:1"])
    assert_one_line_error(result, "ray.address", "127.0.0.1:1")


def test_an_output_dir_that_is_a_file_is_one_line(scripted, tmp_path):
    (tmp_path / "taken").write_text("")
    result = cli.invoke(app, ["sweep", write_sweep(tmp_path, output_dir=str(tmp_path / "taken"))])
    assert_one_line_error(result, "taken", "not a directory")
