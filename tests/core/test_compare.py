from __future__ import annotations

import csv
import io
import json
import math

import pytest
import yaml

from moco_core.compare import BEST_SINGLE, build_comparison, comparison_table
from moco_core.compare_render import markdown_table, render
from moco_core.compare_stats import bootstrap_interval, mcnemar_exact, paired_bootstrap, paired_test
from moco_core.errors import MocoError


def write_run(root, name, method, dataset, domain, mean, normalize=False, best_single=None):
    """A run directory holding only metrics.json (as older runs or other tools may leave)."""
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


def full_run(
    root,
    name,
    method,
    scores,
    *,
    dataset="gsm8k",
    model_scores=None,
    limit=None,
    models=("a", "b"),
    seed=0,
    temperature=0.7,
    params=None,
    label=None,
    fingerprint=None,
    source="auto",
):
    """A run directory as ``moco run`` writes it: config.yaml, predictions.jsonl, metrics.json."""
    folder = root / name
    folder.mkdir()
    config = {
        "method": method,
        "params": params or {},
        "models": [{"name": m, "path": f"/models/{m}"} for m in models],
        "dataset": {"name": dataset, "limit": limit, "source": source},
        "generation": {"max_new_tokens": 64, "temperature": temperature, "top_p": 0.9, "seed": seed},
        "output_dir": str(folder),
        "label": label,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if fingerprint is not None:
        (folder / "fingerprint.json").write_text(json.dumps({"data": fingerprint, "scorer": "moco-evals 0.1.0"}))
    lines = []
    for i, score in enumerate(scores):
        line = {"index": i, "id": f"q{i}", "output": "x", "score": score}
        if model_scores is not None:
            line["model_scores"] = {"a": model_scores[i], "b": 0.0}
        lines.append(json.dumps(line))
    (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    metrics = {
        "method": method,
        "dataset": dataset,
        "domain": "math",
        "score": {"mean": sum(scores) / len(scores), "count": len(scores)},
        "seed": seed,
    }
    if model_scores is not None:
        metrics["dev_best_single"] = {"model": "a", "dev_score": 0.5, "test_score": sum(model_scores) / len(scores)}
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
    markdown = render(build_comparison(runs), "markdown")
    assert markdown.splitlines()[1] == "|---|---|---|---|---|---|"
    assert "| majority_vote | 0.4000 n=10 | 0.6000 n=10 |" in markdown


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


def test_two_runs_of_one_cell_with_the_same_settings_and_seed_are_refused(tmp_path):
    runs = [write_run(tmp_path, "1", "a", "gsm8k", "math", 0.5), write_run(tmp_path, "2", "a", "gsm8k", "math", 0.7)]
    with pytest.raises(MocoError, match="a second a run on gsm8k with the same settings and seed"):
        comparison_table(runs)


def test_cells_carry_n_standard_error_and_bootstrap_interval(tmp_path):
    scores = [1.0] * 30 + [0.0] * 20
    comparison = build_comparison([full_run(tmp_path, "r", "majority_vote", scores)])
    cell = comparison.rows["majority_vote"]["gsm8k"]
    assert cell.n == 50 and cell.mean == pytest.approx(0.6)
    assert cell.se == pytest.approx(math.sqrt(0.6 * 0.4 * 50 / 49) / math.sqrt(50))
    low, high = cell.ci
    assert low < 0.6 < high and high - low == pytest.approx(4 * cell.se, rel=0.15)  # ~ +-1.96 se
    assert "0.6000 [" in render(comparison, "markdown") and "n=50" in render(comparison, "markdown")


def test_runs_on_different_items_are_refused_naming_the_difference(tmp_path):
    runs = [
        full_run(tmp_path, "a", "majority_vote", [1.0, 0.0], limit=20),
        full_run(tmp_path, "b", "logit_fusion", [1.0, 1.0], limit=50),
    ]
    with pytest.raises(MocoError, match=r"gsm8k: runs differ in dataset\.limit: 20 \(.*a\); 50 \(.*b\)"):
        build_comparison(runs)


def test_the_data_fingerprint_decides_when_every_run_recorded_it(tmp_path):
    same = [
        full_run(tmp_path, "a", "majority_vote", [1.0, 0.0], fingerprint="f1", source="file"),
        full_run(tmp_path, "b", "logit_fusion", [1.0, 1.0], fingerprint="f1", source="auto"),
    ]
    assert set(build_comparison(same).rows) == {"majority_vote", "logit_fusion"}  # the same items either way
    changed = full_run(tmp_path, "c", "logit_fusion", [1.0, 1.0], fingerprint="f2", seed=1)
    with pytest.raises(MocoError, match=r"gsm8k: runs differ in dataset\.source: file .*; auto .*different items"):
        build_comparison([same[0], changed])


def test_runs_of_one_method_with_other_settings_become_labelled_rows(tmp_path):
    runs = [
        full_run(tmp_path, "dev", "majority_vote", [1.0, 0.0], params={"tie_break": "dev"}),
        full_run(tmp_path, "random", "majority_vote", [1.0, 1.0], params={"tie_break": "random"}),
        full_run(tmp_path, "named", "majority_vote", [0.0, 0.0], params={"tie_break": "dev"}, seed=3, label="mine"),
    ]
    rows = build_comparison(runs).rows
    assert set(rows) == {"majority_vote (params.tie_break=dev)", "majority_vote (params.tie_break=random)", "mine"}
    assert rows["majority_vote (params.tie_break=random)"]["gsm8k"].mean == 1.0


def test_seeds_of_one_setting_are_one_cell_with_mean_and_spread(tmp_path):
    runs = [
        full_run(tmp_path, f"s{seed}", "majority_vote", scores, seed=seed)
        for seed, scores in enumerate([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    ]
    comparison = build_comparison(runs)
    cell = comparison.rows["majority_vote"]["gsm8k"]
    assert cell.seeds == 3 and cell.mean == pytest.approx(0.5) and cell.seed_sd == pytest.approx(0.5)
    assert "0.5000 ± 0.5000 (3 seeds) n=2" in render(comparison, "markdown")


def test_other_differences_between_rows_are_flagged(tmp_path):
    runs = [
        full_run(tmp_path, "a", "majority_vote", [1.0, 0.0]),
        full_run(tmp_path, "b", "logit_fusion", [1.0, 1.0], models=("a", "c"), temperature=0.0),
    ]
    comparison = build_comparison(runs)
    warnings = " ".join(comparison.warnings)
    assert "runs differ in models: a:a+b:b" in warnings and "generation.temperature" in warnings
    assert "> warning: gsm8k: runs differ in models" in render(comparison, "markdown")


def test_mcnemar_against_the_best_single_model_recorded_in_the_same_run(tmp_path):
    method = [1.0] * 12 + [0.0] * 8
    single = [1.0] * 2 + [0.0] * 10 + [0.0] * 8  # the method wins 10 items, loses none
    comparison = build_comparison([full_run(tmp_path, "r", "majority_vote", method, model_scores=single)])
    test = comparison.rows["majority_vote"]["gsm8k"].vs_best
    assert test.test == "mcnemar" and test.n == 20
    assert test.improvement == pytest.approx(0.5)
    assert test.p_value == pytest.approx(2 * 0.5**10)
    assert comparison.rows[BEST_SINGLE]["gsm8k"].mean == pytest.approx(0.1)


def test_paired_test_uses_a_single_model_run_of_the_same_pool_matched_by_item(tmp_path):
    runs = [
        full_run(tmp_path, "m", "majority_vote", [0.9, 0.8, 0.7, 0.9, 0.6, 0.8]),
        full_run(tmp_path, "s", "single_model", [0.5, 0.5, 0.6, 0.4, 0.5, 0.5]),
        full_run(tmp_path, "other", "logit_fusion", [0.5, 0.5, 0.6, 0.4, 0.5, 0.5], models=("x", "y")),
    ]
    comparison = build_comparison(runs)
    test = comparison.rows["majority_vote"]["gsm8k"].vs_best
    assert test.test == "paired bootstrap" and test.n == 6
    assert test.improvement == pytest.approx(4.7 / 6 - 0.5) and test.p_value < 0.05
    assert comparison.rows["logit_fusion"]["gsm8k"].vs_best is None  # no best single of its pool
    assert next(iter(comparison.rows)) == BEST_SINGLE


def test_statistics_helpers():
    assert mcnemar_exact([1, 1, 0], [1, 1, 0]) == 1.0
    assert mcnemar_exact([1, 0, 1, 0], [0, 1, 0, 1]) == 1.0
    assert mcnemar_exact([1, 1, 1], [0, 0, 0]) == pytest.approx(0.25)
    assert paired_bootstrap([0.5, 0.2], [0.5, 0.2]) == 1.0
    assert paired_test([], []) is None
    low, high = bootstrap_interval([0.0, 1.0] * 50)
    assert 0.38 < low < 0.45 and 0.55 < high < 0.62


def test_output_formats(tmp_path):
    runs = [
        full_run(tmp_path, "a", "majority_vote", [1.0, 0.0], label="vote | dev_best"),
        full_run(tmp_path, "b", "logit_fusion", [1.0, 1.0]),
    ]
    comparison = build_comparison(runs)
    markdown = render(comparison, "markdown")
    assert "| vote \\| dev_best |" in markdown
    assert markdown_table(["a|b"], [["c"]]).splitlines()[0] == "| a\\|b |"
    table = list(csv.DictReader(io.StringIO(render(comparison, "csv"))))
    assert {r["row"] for r in table} == {"vote | dev_best", "logit_fusion"}
    assert {"mean", "n", "ci_low", "ci_high", "seeds", "vs_best_p_value"} <= set(table[0])
    data = json.loads(render(comparison, "json"))
    assert {c["row"]: c["mean"] for c in data["cells"]} == {"vote | dev_best": 0.5, "logit_fusion": 1.0}
    latex = render(comparison, "latex")
    assert "\\toprule" in latex and "vote | dev\\_best" in latex and "math: gsm8k" in latex
