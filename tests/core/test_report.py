"""``moco report``: exact numbers on hand-made run directories, then end to end on a scripted sweep."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.report import build_report
from moco_core.report.collect import collect_cells
from moco_core.report.controls import compute_matched
from moco_core.report.cost import cost_rows
from moco_core.report.emergence import emergence, pool_diversity
from moco_core.report.plots import cost_views
from moco_core.report.tables import render_latex, render_markdown, results_table
from moco_core.testing import (
    scripted_plugins,
    set_responder,
)

pytest.importorskip("matplotlib")
cli = CliRunner()


def write_cell(
    root,
    pool,
    method,
    dataset,
    domain,
    scores,
    models,
    model_scores=None,
    generations=8,
    key=None,
    compute=None,
    extra=None,
):
    directory = root / "cells" / f"{pool}--{method}--{dataset}--s0"
    directory.mkdir(parents=True)
    lines = []
    for i, score in enumerate(scores):
        line = {"index": i, "id": f"q{i}", "input": "", "output": "", "score": score}
        if model_scores:
            line["model_scores"] = {name: values[i] for name, values in model_scores.items()}
        lines.append(json.dumps(line))
    (directory / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    metrics = {
        "method": key or method,
        "dataset": dataset,
        "domain": domain,
        "score": {"mean": sum(scores) / len(scores), "count": len(scores)},
        "generations": {"made": generations, "cached": 0},
        "wall_time_s": 1.5,
        "pool": [{"name": m, "path": m} for m in models],
    }
    if compute is not None:
        metrics["compute"] = compute
    metrics.update(extra or {})
    (directory / "metrics.json").write_text(json.dumps(metrics))
    info = {"cell": directory.name, "method": method, "method_key": key or method, "dataset": dataset, "pool": pool}
    (directory / "cell.json").write_text(json.dumps({**info, "seed": 0, "models": models}))


@pytest.fixture()
def handmade(tmp_path):
    pair = ["a", "b"]
    write_cell(tmp_path, "p2", "single_model", "d1", "math", [1, 0, 0, 0], pair, {"a": [1, 0, 0, 0], "b": [0, 1, 0, 0]})
    write_cell(tmp_path, "p2", "mv", "d1", "math", [1, 1, 1, 0], pair, generations=8, key="majority_vote")
    write_cell(tmp_path, "p2", "self_consistency", "d1", "math", [1, 0, 1, 0], pair, generations=10)
    write_cell(tmp_path, "p2", "single_model", "d2", "qa", [1, 0, 1, 0], pair, {"a": [1, 0, 1, 0], "b": [1, 0, 1, 0]})
    write_cell(tmp_path, "p2", "mv", "d2", "qa", [1, 0, 0, 0], pair, key="majority_vote")
    trio = ["a", "b", "c"]
    write_cell(
        tmp_path,
        "p3",
        "single_model",
        "d1",
        "math",
        [1, 1, 0, 0],
        trio,
        {"a": [1, 0, 0, 0], "b": [0, 1, 0, 0], "c": [1, 1, 0, 0]},
    )
    write_cell(tmp_path, "p3", "mv", "d1", "math", [1, 1, 0, 1], trio, key="majority_vote")
    return tmp_path


def test_results_table_marks_best_second_and_gains_over_the_best_single_model(handmade):
    table = results_table(collect_cells(handmade), "p2")
    assert [(c.label, c.kind) for c in table.columns] == [("d2", "dataset"), ("d1", "dataset"), ("avg", "avg")]
    rows = dict(table.rows)
    assert rows["best single model"] == [0.5, 0.25, 0.375]
    assert rows["mv"] == [0.25, 0.75, 0.5]
    assert rows["self_consistency"] == [None, 0.5, None]
    mv, sc = [m for m, _ in table.rows].index("mv"), [m for m, _ in table.rows].index("self_consistency")
    assert table.marks[mv] == ["best", "best", "best"] and table.marks[sc] == ["", "second", ""]
    assert table.up[mv] == [False, True, True] and table.up[sc][1]
    markdown = render_markdown(table)
    assert "| mv | **0.2500** | **0.7500** ↑ | **0.5000** ↑ |" in markdown
    assert "| self_consistency |  | _0.5000_ ↑ |  |" in markdown
    latex = render_latex(table)
    assert r"\multicolumn{1}{c}{qa} & \multicolumn{1}{c}{math}" in latex
    assert r"\textbf{0.7500}$^\uparrow$" in latex and r"self\_consistency & " in latex


def test_an_oracle_is_a_labelled_last_row_never_marked_best_nor_counted_as_a_method(handmade):
    pair = ["a", "b"]
    oracle = {"oracle": True}
    write_cell(handmade, "p2", "oracle_routing", "d1", "math", [1, 1, 1, 1], pair, extra=oracle)
    write_cell(handmade, "p2", "oracle_routing", "d2", "qa", [1, 0, 1, 1], pair, extra=oracle)
    cells = collect_cells(handmade)
    table = results_table(cells, "p2")
    labels = [label for label, _ in table.rows]
    assert labels[-1] == "oracle upper bound (oracle_routing)" and "oracle_routing" not in labels
    assert dict(table.rows)[labels[-1]] == [0.75, 1.0, 0.875]
    mv = labels.index("mv")
    assert table.marks[mv] == ["best", "best", "best"], "the bound's higher scores take no mark from a method"
    assert table.marks[-1] == ["", "", ""] and not any(table.up[-1])
    assert all(r.method != "oracle_routing" for r in emergence(cells))
    assert {row[2] for row in cost_rows(cells) if row[0] == "p2"} >= {"mv", "oracle upper bound (oracle_routing)"}
    assert "oracle_routing" not in {row[2] for row in cost_rows(cells)}


def test_emergence_controls_and_diversity(handmade):
    cells = collect_cells(handmade)
    rows = {(r.pool, r.method, r.domain): (r.unsolved, r.solved) for r in emergence(cells)}
    assert rows["p2", "mv", "math"] == (2, 1)
    assert rows["p2", "mv", "qa"] == (2, 0)
    assert rows["p2", "mv", "all"] == (4, 1)
    assert rows["p3", "mv", "math"] == (2, 1)
    assert rows["p2", "self_consistency", "math"] == (2, 1)
    controls = {(r.pool, r.dataset, r.method): r for r in compute_matched(cells)}
    matched = controls["p2", "d1", "mv"]
    assert (matched.control, matched.budget, matched.control_budget) == ("self_consistency", 2.0, 2.5)
    assert matched.gain == pytest.approx(0.25)
    assert controls["p2", "d2", "mv"].control is None
    assert ("p2", "d1", "self_consistency") not in controls
    diversity = pool_diversity(cells)
    assert diversity["p2"] == pytest.approx((0.5 + 0.0) / 2)
    assert diversity["p3"] == pytest.approx((2 / 4 + 1 / 4 + 1 / 4) / 3)


def counters(new, cached, passes):
    """A run's ``compute`` block: ``new`` and ``cached`` generated tokens, ``passes`` forward passes of model a."""
    return {
        "generated_tokens": {"a": new},
        "cached_tokens": {"a": cached},
        "forward_passes": {"a": passes},
        "total_tokens": new,
        "total_cached_tokens": cached,
        "complete": True,
    }


def test_controls_match_tokens_and_the_cost_view_shows_forward_passes(tmp_path):
    pair, scores = ["a", "b"], [1, 1, 0, 0]
    write_cell(
        tmp_path,
        "p",
        "mv",
        "d",
        "math",
        [1, 1, 1, 0],
        pair,
        generations=8,
        key="majority_vote",
        compute=counters(60, 40, 30),
    )
    # By generations per item sc-few (2.5) would be the match; by tokens per item only sc-long reaches 25.
    write_cell(
        tmp_path,
        "p",
        "sc-few",
        "d",
        "math",
        scores,
        pair,
        generations=10,
        key="self_consistency",
        compute=counters(40, 0, 20),
    )
    write_cell(
        tmp_path,
        "p",
        "sc-long",
        "d",
        "math",
        scores,
        pair,
        generations=4,
        key="self_consistency",
        compute=counters(0, 120, 0),
    )
    write_cell(tmp_path, "p", "old", "d", "math", scores, pair, generations=4, key="debate")
    cells = collect_cells(tmp_path)
    rows = {r.method: r for r in compute_matched(cells)}
    assert (rows["mv"].budget, rows["mv"].unit) == (25.0, "tokens")
    assert (rows["mv"].control, rows["mv"].control_budget, rows["mv"].gain) == ("sc-long", 30.0, 0.25)
    assert (rows["old"].unit, rows["old"].budget) == ("generations", 1.0), "a run without counters falls back"
    views = dict(cost_views(cells))
    assert views["forward passes per test item (this run)"] == {
        ("p", "mv"): 7.5,
        ("p", "sc-few"): 5.0,
        ("p", "sc-long"): 0.0,
    }
    assert views["generated tokens per test item"][("p", "sc-long")] == 30.0
    assert ("p", "old") in views["generations per test item"] and ("p", "old") not in views[
        "generated tokens per test item"
    ]
    assert build_report(tmp_path).files
    cost = (tmp_path / "report" / "cost.csv").read_text().splitlines()
    assert cost[0] == "pool,dataset,method,score,tokens/item,forward passes/item,gens/item,wall time (s)"
    assert "p,d,mv,0.7500,25.0,7.50,2.00,1.5" in cost and "p,d,old,0.5000,,,1.00,1.5" in cost


def test_report_command_writes_tables_figures_and_one_self_contained_page(handmade):
    result = cli.invoke(app, ["report", str(handmade)])
    assert result.exit_code == 0, result.output
    out = handmade / "report"
    names = {p.name for p in out.iterdir()}
    expected = {"results.md", "results.csv", "results.tex", "emergence.md", "emergence.csv", "controls.md"}
    assert expected | {"controls.csv", "report.html", "cost.png", "cost.svg"} <= names
    assert {"scaling_models.png", "scaling_models.svg", "scaling_diversity.png"} <= names
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)=["'](?!data:)""", html), "nothing is fetched from elsewhere"
    assert "<b>0.7500</b>" in html and "pool p3" in html
    assert (out / "results.csv").read_text().splitlines()[0].startswith("pool,method,")
    assert "### pool p2" in result.output


def test_report_refuses_a_folder_without_runs(tmp_path):
    result = cli.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no finished runs" in result.output


def test_report_of_a_real_sweep(fresh_cache_dir, tmp_path):
    with scripted_plugins():
        set_responder("yes-A", "A sure")
        set_responder("yes-B", "B sure")
        data = {"name": "abc", "task_type": "letter"}
        for split, n in (("dev", 2), ("test", 4)):
            data[split] = [
                {"id": f"{split}{i}", "question": f"{split} {i}", "choices": {"A": "", "B": ""}, "answer": "AB"[i % 2]}
                for i in range(n)
            ]
        (tmp_path / "abc.json").write_text(json.dumps(data))
        models = [{"name": n, "path": f"yes-{n}", "backend": "scripted"} for n in "AB"]
        sweep = {
            "methods": ["single_model", "majority_vote", {"method": "self_consistency", "params": {"samples": 3}}],
            "datasets": [{"path": str(tmp_path / "abc.json")}],
            "pools": [{"name": "ab", "models": models}],
            "output_dir": str(tmp_path / "sweep"),
        }
        (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
        assert cli.invoke(app, ["sweep", str(tmp_path / "sweep.yaml")]).exit_code == 0
    result = cli.invoke(app, ["report", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    assert "| best single model | 0.5000 |" in result.output
    controls = (tmp_path / "sweep" / "report" / "controls.csv").read_text()
    assert "majority_vote" in controls and ",self_consistency," in controls
