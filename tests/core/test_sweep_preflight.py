"""``moco sweep``'s pre-flight runs each cell's full plan check (as ``moco validate`` would) wherever the
cell's data loads here, so a cell its method would refuse stops the sweep before any cell starts."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.sweep import expand, load_sweep, preflight
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
        set_responder("pf-a", "A")
        set_responder("pf-b", "B")
        yield


def scripted_pool(name: str) -> dict:
    return {"name": name, "models": [{"name": m, "path": f"pf-{m}", "backend": "scripted"} for m in ("a", "b")]}


def write_sweep(tmp_path, datasets, methods, pools=None, **changes):
    body = {
        "base": {"generation": {"batch_size": 2, "max_new_tokens": 8}},
        "methods": methods,
        "datasets": [{"path": str(d)} for d in datasets],
        "pools": pools or [scripted_pool("p")],
        "output_dir": str(tmp_path / "sweep"),
        **changes,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def validate_error(tmp_path, sweep_file, cell_name: str) -> str:
    """What ``moco validate`` says about one cell's config."""
    cell = next(c for c in expand(load_sweep(sweep_file), tmp_path / "sweep") if c.name == cell_name)
    config = tmp_path / "cell.yaml"
    config.write_text(yaml.safe_dump(cell.config.model_dump(mode="json", exclude={"output_dir"})))
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 2, result.output
    return result.output.strip().removeprefix("error: ")


@pytest.mark.parametrize("flags", [[], ["--dry-run"]])
def test_a_cell_its_method_refuses_stops_the_sweep_before_any_cell_runs(scripted, tmp_path, flags):
    with_dev = write_letters_dataset(tmp_path, name="withdev")
    no_dev = write_letters_dataset(tmp_path, n_dev=0, name="nodev")
    methods = ["majority_vote", {"method": "majority_vote", "label": "mv-dev", "params": {"tie_break": "dev"}}]
    sweep_file = write_sweep(tmp_path, [with_dev, no_dev], methods)
    result = cli.invoke(app, ["sweep", str(sweep_file), *flags])
    expected = validate_error(tmp_path, sweep_file, "p--mv-dev--nodev--s0")
    assert "tie_break 'dev'" in expected
    assert_one_line_error(result, "cell p--mv-dev--nodev--s0: ", expected)
    assert not (tmp_path / "sweep").exists()
    assert ScriptedBackend.calls == []


def test_logit_fusion_weights_not_one_per_member_refuse_the_sweep(scripted, tmp_path, tiny_pool_paths):
    pytest.importorskip("moco_methods_logit")
    data = write_letters_dataset(tmp_path)
    pool = {"name": "tiny", "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths[:2])]}
    methods = ["logit_fusion", {"method": "logit_fusion", "label": "one-weight", "params": {"weights": [1.0]}}]
    sweep_file = write_sweep(tmp_path, [data], methods, pools=[pool])
    result = cli.invoke(app, ["sweep", str(sweep_file)])
    assert_one_line_error(result, "cell tiny--one-weight--letters--s0: params.weights: expected 2 weights")
    assert not (tmp_path / "sweep").exists()


def test_each_distinct_dataset_is_loaded_once_and_missing_files_wait_for_their_cells(scripted, tmp_path, monkeypatch):
    loads = []
    real = preflight.load_dataset
    monkeypatch.setattr(
        preflight, "load_dataset", lambda source, registry: loads.append(source) or real(source, registry)
    )
    data = [write_letters_dataset(tmp_path, name="one"), write_letters_dataset(tmp_path, name="two")]
    methods = [
        "single_model",
        "majority_vote",
        {"method": "majority_vote", "label": "mv-dev", "params": {"tie_break": "dev"}},
    ]
    late = tmp_path / "late.json"
    sweep_file = write_sweep(tmp_path, [*data, late], methods, pools=[scripted_pool("p"), scripted_pool("q")])
    result = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "18 cells" in result.output and "18 pending" in result.output
    assert sorted(source.path for source in loads) == sorted(str(d) for d in data)


def test_ray_cells_device_is_left_to_the_workers(scripted, tmp_path):
    data = write_letters_dataset(tmp_path)
    base = {"generation": {"max_new_tokens": 8}, "hardware": {"device": "cuda:63"}}
    sweep_file = write_sweep(tmp_path, [data], ["single_model"], base=base)
    local = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run"])
    assert_one_line_error(local, "cell p--single_model--letters--s0: hardware.device: cuda:63")
    remote = cli.invoke(app, ["sweep", str(sweep_file), "--dry-run", "--executor", "ray"])
    assert remote.exit_code == 0, remote.output
