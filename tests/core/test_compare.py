from __future__ import annotations

import json

import pytest

from moco_core.compare import comparison_table, render_csv, render_markdown
from moco_core.errors import MocoError


def write_run(root, name, method, dataset, domain, mean, normalize=False, best_single=None):
    folder = root / name
    folder.mkdir()
    metrics = {
        "method": method,
        "dataset": dataset,
        "domain": domain,
        "normalize": normalize,
        "score": {"mean": mean, "count": 10},
    }
    if best_single is not None:
        metrics["dev_best_single"] = {"model": "a", "dev_score": 0.5, "test_score": best_single}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_columns_grouped_by_domain_with_macro_averages(tmp_path):
    runs = [
        write_run(tmp_path, "1", "majority_vote", "gsm8k", "math", 0.6, best_single=0.5),
        write_run(tmp_path, "2", "majority_vote", "mmlu_redux", "qa", 0.4),
        write_run(tmp_path, "3", "majority_vote", "math", "math", 0.2),
        write_run(tmp_path, "4", "single_model", "gsm8k", "math", 0.55),
        write_run(tmp_path, "5", "single_model", "mmlu_redux", "qa", 0.3),
        write_run(tmp_path, "6", "single_model", "math", "math", 0.1),
    ]
    header, rows = comparison_table(runs)
    assert header == ["method", "qa: mmlu_redux", "math: gsm8k", "math: math", "math avg", "avg"]
    by_method = {row[0]: row[1:] for row in rows}
    assert by_method["best single model"] == ["0.3000", "0.5500", "0.1000", "0.3250", "0.3125"]
    assert by_method["majority_vote"] == ["0.4000", "0.6000", "0.2000", "0.4000", "0.4000"]
    markdown = render_markdown(header, rows)
    assert markdown.splitlines()[1] == "|---|---|---|---|---|---|"
    assert render_csv(header, rows).splitlines()[0].startswith("method,qa: mmlu_redux")


def test_reward_columns_are_min_max_normalised_in_averages(tmp_path):
    runs = [
        write_run(tmp_path, "1", "a", "alpacaeval", "instruction_following", 5.0, normalize=True),
        write_run(tmp_path, "2", "b", "alpacaeval", "instruction_following", -3.0, normalize=True),
        write_run(tmp_path, "3", "a", "gsm8k", "math", 0.5),
        write_run(tmp_path, "4", "b", "gsm8k", "math", 0.5),
    ]
    header, rows = comparison_table(runs)
    assert header[-1] == "avg"
    by_method = {row[0]: row for row in rows}
    assert by_method["a"][header.index("instruction_following: alpacaeval")] == "5.0000"  # raw in the cell
    assert by_method["a"][-1] == "0.7500"  # (1.0 + 0.5) / 2
    assert by_method["b"][-1] == "0.2500"  # (0.0 + 0.5) / 2


def test_missing_cells_leave_averages_empty(tmp_path):
    runs = [
        write_run(tmp_path, "1", "a", "gsm8k", "math", 0.5),
        write_run(tmp_path, "2", "b", "mmlu_redux", "qa", 0.5),
    ]
    _, rows = comparison_table(runs)
    assert {row[0]: row[-1] for row in rows} == {"a": "", "b": ""}


def test_not_a_run_dir(tmp_path):
    with pytest.raises(MocoError, match=r"no metrics\.json"):
        comparison_table([tmp_path])


def test_two_runs_of_one_cell_are_refused(tmp_path):
    runs = [write_run(tmp_path, "1", "a", "gsm8k", "math", 0.5), write_run(tmp_path, "2", "a", "gsm8k", "math", 0.7)]
    with pytest.raises(MocoError, match="a second a run on gsm8k"):
        comparison_table(runs)
