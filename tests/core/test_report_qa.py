"""``moco report`` on a sweep with compute-matched controls, and cost numbers a backend cannot know."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.report.collect import CellResult, collect_cells
from moco_core.report.plots import cost_views, scaling_plots
from moco_core.testing import assert_one_line_error, scripted_plugins, set_responder, write_letters_dataset

cli = CliRunner()


@pytest.fixture()
def controlled_sweep(fresh_cache_dir, tmp_path) -> Path:
    """Two pools, two methods and their compute-matched control cells, all finished."""

    def every(k: int):
        return lambda request: "A" if int(re.search(r"question (\d+)", request.prompt)[1]) % k == 0 else "B"

    model = lambda name, k: {"name": name, "path": f"rq-{k}", "backend": "scripted"}  # noqa: E731
    body = {
        "base": {"generation": {"batch_size": 4, "max_new_tokens": 8}},
        "methods": ["single_model", "majority_vote", {"method": "multiagent_debate", "label": "debate"}],
        "datasets": [{"path": str(write_letters_dataset(tmp_path, n_test=12, n_dev=3))}],
        "pools": [
            {"name": "trio", "models": [model("two", 2), model("three", 3), model("five", 5)]},
            {"name": "duo", "models": [model("three", 3), model("five", 5)]},
        ],
        "output_dir": str(tmp_path / "sweep"),
        "controls": "compute_matched",
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(body))
    with scripted_plugins():
        for k in (2, 3, 5):
            set_responder(f"rq-{k}", every(k))
        result = cli.invoke(app, ["sweep", str(tmp_path / "grid.yaml")])
    assert result.exit_code == 0, result.output
    assert "control-sc-" in result.output
    return tmp_path / "sweep"


def test_control_cells_are_yardsticks_not_rows_of_the_results(controlled_sweep, tmp_path):
    result = cli.invoke(app, ["report", str(controlled_sweep)])
    assert result.exit_code == 0, result.output
    report = controlled_sweep / "report"
    results, emergence = (report / "results.md").read_text(), (report / "emergence.md").read_text()
    assert "control-sc-" not in results and "control-sc-" not in emergence
    assert "| debate |" in results and "| majority_vote |" in results
    # the controls table pairs each method with its control, and the cost table lists what the controls spent
    controls = (report / "controls.md").read_text().splitlines()[2:]
    assert len(controls) == 4 and all("control-sc-" in line for line in controls)
    assert "control-sc-" in (report / "cost.md").read_text()

    cells = collect_cells(controlled_sweep)
    assert any(c.is_control for c in cells)
    for _, values in cost_views(cells):
        assert not any(method.startswith("control-sc-") for _, method in values)
    drawn = _plotted(cells, tmp_path)
    assert drawn and not any(str(label).startswith("control-sc-") for label in drawn)
    without_single = _plotted([c for c in cells if c.method_key != "single_model"], tmp_path)
    assert "best single model" in without_single, "the dev-best model is the reference, as in the results table"


def _plotted(cells: list[CellResult], out: Path) -> list[str]:
    """The labels of the lines the scaling figures draw."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    drawn: list[str] = []
    original = pyplot.Axes.plot
    pyplot.Axes.plot = lambda self, *a, **k: drawn.append(str(k.get("label"))) or original(self, *a, **k)
    try:
        scaling_plots(cells, out)
    finally:
        pyplot.Axes.plot = original
    return drawn


def _cell(compute: dict) -> CellResult:
    metrics = {"method": "m", "dataset": "d", "score": {"mean": 0.5, "count": 4}, "compute": compute}
    return CellResult(Path("."), "m", "m", "d", "other", "p", 0, ["a"], metrics)


def test_forward_passes_are_unknown_where_a_backend_generated_without_counting_them():
    remote = _cell({"generations": {"a": 4}, "cached_generations": {}, "forward_passes": {}})
    cached = _cell({"generations": {}, "cached_generations": {"a": 4}, "forward_passes": {}})
    local = _cell({"generations": {"a": 4}, "forward_passes": {"a": 32}})
    assert remote.forward_passes is None
    assert cached.forward_passes == 0, "answers read from the cache cost no forward pass"
    assert local.forward_passes == 32


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("cell.json", "{bad", "damaged cell file"),
        ("cell.json", '{"seed": "one"}', "damaged cell file"),
        ("metrics.json", {"compute": {"forward_passes": {"two": "many"}}}, "'compute.forward_passes' is not a count"),
        ("metrics.json", {"compute": "lots"}, "'compute' is not an object"),
        ("metrics.json", {"generations": [3]}, "'generations'"),
        ("metrics.json", {"score": {"mean": 0.5, "count": "six"}}, "'score.count'"),
    ],
)
def test_a_damaged_cell_file_is_one_line_naming_it(controlled_sweep, name, content, fragment):
    cell = controlled_sweep / "cells" / "trio--majority_vote--letters--s0"
    if isinstance(content, dict):
        content = json.dumps({**json.loads((cell / name).read_text()), **content})
    (cell / name).write_text(content)
    result = cli.invoke(app, ["report", str(controlled_sweep)])
    assert_one_line_error(result, str(cell / name), fragment)


def test_a_report_output_dir_that_is_a_file_is_one_line(controlled_sweep, tmp_path):
    (tmp_path / "taken").write_text("")
    result = cli.invoke(app, ["report", str(controlled_sweep), "--output-dir", str(tmp_path / "taken")])
    assert_one_line_error(result, "taken", "not a directory")


def test_scaling_figures_name_the_pool_at_each_point(controlled_sweep, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ticks: list[list[str]] = []
    original = pyplot.Axes.set_xticks
    monkeypatch.setattr(
        pyplot.Axes,
        "set_xticks",
        lambda self, at, labels=None, **k: ticks.append(list(labels or [])) or original(self, at, labels, **k),
    )
    scaling_plots(collect_cells(controlled_sweep), tmp_path)
    assert ["2\nduo", "3\ntrio"] in ticks
