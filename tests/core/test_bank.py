"""Response banks: import a RouterBench table, run methods on it with no model, report routing metrics."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.report.routing import average_quality, frontier, frontier_at

pd = pytest.importorskip("pandas")
cli = CliRunner()
MODELS = {"cheap": 0.001, "mid": 0.01, "big": 0.1}


def routerbench_table(path, n=20):
    """Big solves every query, mid the even ones, cheap every third: known oracle and frontier."""
    rows = []
    for i in range(n):
        row = {"sample_id": f"s{i}", "prompt": str([f"Question number {i}?"]), "eval_name": "toy"}
        solved = {"cheap": i % 3 == 0, "mid": i % 2 == 0, "big": True}
        for model, cost in MODELS.items():
            row[model] = float(solved[model])
            row[f"{model}|model_response"] = f"{model} says {'right' if solved[model] else 'wrong'} {i}"
            row[f"{model}|total_cost"] = cost
        rows.append(row)
    pd.DataFrame(rows).to_pickle(path)
    return path


def test_frontier_is_the_upper_hull_and_its_average_quality_is_exact():
    hull = frontier([(1, 0.5), (2, 0.6), (3, 0.9), (2.5, 0.4), (4, 0.85)])
    assert hull == [(1, 0.5), (3, 0.9)]
    assert frontier_at(hull, 2) == pytest.approx(0.7) and frontier_at(hull, 0.5) == 0 and frontier_at(hull, 9) == 0.9
    assert average_quality(hull, 1, 3) == pytest.approx(0.7)
    assert average_quality(hull, 0, 4) == pytest.approx((1.4 + 0.9) / 4)


def test_bank_runs_routers_and_votes_without_a_model_and_reports_routing(fresh_cache_dir, tmp_path):
    source = routerbench_table(tmp_path / "routerbench.pkl")
    bank = tmp_path / "toy_bank.json"
    made = cli.invoke(app, ["bank", str(source), "--output", str(bank), "--dev-fraction", "0.25"])
    assert made.exit_code == 0, made.output
    data = json.loads(bank.read_text())
    assert (len(data["dev"]), len(data["test"]), data["task_type"]) == (5, 15, "bank")
    assert data["test"][0]["input"].startswith("Question number")
    snippet = yaml.safe_load(made.output.split("\n", 1)[1])
    sweep = {
        "methods": ["single_model", "oracle_routing", "random_routing", "majority_vote"],
        "datasets": [snippet["dataset"]],
        "pools": [{"name": "toy", "models": snippet["models"]}],
        "output_dir": str(tmp_path / "sweep"),
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    result = cli.invoke(app, ["sweep", str(tmp_path / "sweep.yaml")])
    assert result.exit_code == 0, result.output
    cells = tmp_path / "sweep" / "cells"
    oracle = json.loads((cells / "toy--oracle_routing--toy_bank--s0" / "metrics.json").read_text())
    assert oracle["score"]["mean"] == 1.0
    single = json.loads((cells / "toy--single_model--toy_bank--s0" / "metrics.json").read_text())
    assert single["model_test_scores"]["big"] == 1.0 and single["model_test_scores"]["cheap"] < 1.0
    assert single["score"]["mean"] == single["model_test_scores"][single["dev_best_single"]["model"]]
    lines = [json.loads(line) for line in (cells / "toy--oracle_routing--toy_bank--s0" / "predictions.jsonl").open()]
    assert all(line["output"].startswith(line["routed_to"] + " says right") for line in lines)

    report = cli.invoke(app, ["report", str(tmp_path / "sweep")])
    assert report.exit_code == 0, report.output
    rows = pd.read_csv(tmp_path / "sweep" / "report" / "routing.csv")
    by_name = {row["name"]: row for _, row in rows.iterrows()}
    assert by_name["oracle router"]["quality"] == 1.0
    test_ids = [int(item["id"][1:]) for item in data["test"]]
    cheapest_right = [0.001 if i % 3 == 0 else 0.01 if i % 2 == 0 else 0.1 for i in test_ids]
    assert by_name["oracle router"]["cost/query"] == pytest.approx(sum(cheapest_right) / 15, rel=1e-4)
    assert by_name["oracle_routing"]["gap to oracle"] == 0.0
    assert by_name["majority_vote"]["cost/query"] == pytest.approx(sum(MODELS.values()), rel=1e-4)
    assert by_name["big"]["quality"] == 1.0 and by_name["big"]["cost/query"] == pytest.approx(0.1)
    assert by_name["oracle_routing"]["above frontier"] > 0, "routing per query beats every fixed mix of models"
    assert "single-model frontier AIQ" in (tmp_path / "sweep" / "report" / "routing.md").read_text()


@pytest.fixture()
def bank_pool(fresh_cache_dir, tmp_path):
    """A three-model bank (cheap, mid, big) and a writer of run configs over it."""
    bank = tmp_path / "bank.json"
    assert cli.invoke(app, ["bank", str(routerbench_table(tmp_path / "t.pkl")), "--output", str(bank)]).exit_code == 0

    def write(method, params=None, data=None, **member):
        models = [
            {"name": m, "path": m, "backend": "bank", "backend_options": {"bank": str(bank)}, **member} for m in MODELS
        ]
        config = {
            "method": method,
            "params": params or {},
            "models": models,
            "dataset": {"path": str(data or bank)},
            "output_dir": str(tmp_path / "run" / method),
        }
        path = tmp_path / f"{method}.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    return write


def refusal(command, config):
    result = cli.invoke(app, [command, config])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


NEEDS_GENERATION = "needs generation beyond each model's one answer per query"


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("multiagent_debate", {}, f"models[0].backend: multiagent_debate {NEEDS_GENERATION}"),
        ("prompt_routing", {}, f"models[0].backend: prompt_routing {NEEDS_GENERATION}"),
        ("cascade", {"confidence": "self_ask"}, f"models[0].backend: cascade {NEEDS_GENERATION}"),
        ("cascade", {}, f"models[0].backend: cascade {NEEDS_GENERATION}"),
        ("self_consistency", {}, "params.samples: 5 answers per model need generation; models[0] uses the bank"),
        (
            "self_consistency",
            {"model": "big", "samples": 3},
            "params.samples: 3 answers per model need generation; models[2]",
        ),
        ("majority_vote", {"samples_per_model": 2}, "params.samples_per_model: 2 answers per model need generation"),
        ("slm_mux", {}, "params.samples_per_model: 5 answers per model need generation"),
        ("trained_router", {}, "models[0].backend: trained_router trains cheap as its router from its weights"),
    ],
)
def test_a_method_that_needs_new_generations_is_refused_before_loading(bank_pool, method, params, message):
    from moco_core.plugins import get_registry

    if method not in get_registry().methods:
        pytest.skip(f"{method} is not installed")
    config = bank_pool(method, params)
    validated = refusal("validate", config)
    assert message in validated and "bank backend" in validated
    assert refusal("run", config) == validated


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("single_model", {}),
        ("random_routing", {}),
        ("majority_vote", {}),
        ("self_consistency", {"samples": 1}),
        ("slm_mux", {"samples_per_model": 1}),
        ("graph_router", {"epochs": 5, "hidden_dim": 8}),
    ],
)
def test_a_method_that_asks_each_member_once_validates_and_runs_on_a_bank(bank_pool, method, params, tmp_path):
    if method == "graph_router":
        pytest.importorskip("torch_geometric")
    config = bank_pool(method, params)
    validated = cli.invoke(app, ["validate", config])
    assert validated.exit_code == 0, validated.output
    ran = cli.invoke(app, ["run", config])
    assert ran.exit_code == 0, ran.output
    metrics = json.loads((tmp_path / "run" / method / "metrics.json").read_text())
    assert 0 < metrics["score"]["mean"] <= 1


def test_a_bank_member_with_a_system_prompt_or_an_unknown_model_is_refused(bank_pool):
    config = bank_pool("single_model", system_prompt="Be brief.")
    validated = refusal("validate", config)
    assert "models[0].system_prompt: the bank backend replays stored answers" in validated
    assert refusal("run", config) == validated
    config = bank_pool("single_model", path="nobody")
    assert "has no model 'nobody'" in refusal("run", config)


def test_a_bank_pool_on_queries_its_bank_does_not_hold_is_refused(bank_pool, tmp_path):
    items = [{"id": f"x{i}", "input": f"Another question {i}?", "answer": "yes"} for i in range(3)]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"name": "other", "task_type": "bank", "dev": [], "test": items}))
    config = bank_pool("random_routing", data=other)
    validated = refusal("validate", config)
    assert "dataset: test item 'x0' is a query no member's bank holds an answer to" in validated
    assert refusal("run", config) == validated


def test_a_plugin_method_declares_answers_only_to_run_on_a_bank():
    from moco_core.errors import MocoError
    from moco_core.registry import MethodSpec, Requirements
    from moco_core.validation import check_replay

    spec = MethodSpec(key="plugin_router", level="api", implementation="x:Y", summary="")
    with pytest.raises(MocoError, match=f"models\\[1\\].backend: plugin_router {NEEDS_GENERATION}"):
        check_replay("bank", 1, spec, None)
    spec.requirements = Requirements(answers_only=True)
    check_replay("bank", 1, spec, None)


def test_a_file_that_is_not_routerbench_is_one_line(tmp_path):
    pd.DataFrame([{"prompt": "x", "answer": 1}]).to_csv(tmp_path / "other.csv", index=False)
    result = cli.invoke(app, ["bank", str(tmp_path / "other.csv"), "--output", str(tmp_path / "b.json")])
    assert result.exit_code == 2 and "not RouterBench format" in result.output


def test_a_single_model_run_becomes_a_bank(fresh_cache_dir, tmp_path):
    from moco_core.testing import (
        scripted_plugins,
        set_responder,
    )

    items = [
        {"id": f"q{i}", "question": f"q {i}", "choices": {"A": "", "B": ""}, "answer": "AB"[i % 2]} for i in range(8)
    ]
    (tmp_path / "d.json").write_text(json.dumps({"task_type": "letter", "dev": items[:2], "test": items}))
    with scripted_plugins("l"):
        set_responder("says-A", "A")
        set_responder("says-B", "B")
        models = [{"name": n, "path": f"says-{n}", "backend": "scripted"} for n in "AB"]
        run = {"method": "single_model", "models": models, "dataset": {"path": str(tmp_path / "d.json")}}
        (tmp_path / "run.yaml").write_text(yaml.safe_dump({**run, "output_dir": str(tmp_path / "run")}))
        assert cli.invoke(app, ["run", str(tmp_path / "run.yaml")]).exit_code == 0
    bank = tmp_path / "bank.json"
    made = cli.invoke(app, ["bank", str(tmp_path / "run"), "--format", "moco", "--output", str(bank)])
    assert made.exit_code == 0, made.output
    data = json.loads(bank.read_text())
    assert len(data["dev"]) + len(data["test"]) == 8
    assert {tuple(sorted(i["bank"])) for i in data["test"]} == {("A", "B")}
    snippet = yaml.safe_load(made.output.split("\n", 1)[1])
    config = {"method": "oracle_routing", **snippet, "output_dir": str(tmp_path / "oracle")}
    (tmp_path / "oracle.yaml").write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(tmp_path / "oracle.yaml")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "oracle" / "metrics.json").read_text())["score"]["mean"] == 1.0
    refused = cli.invoke(app, ["bank", str(tmp_path / "oracle"), "--format", "moco", "--output", str(bank)])
    assert refused.exit_code == 2 and "not a single_model run" in refused.output


def llmrouterbench_results(root, n=8):
    """LLMRouterBench's layout: results/bench/<dataset>/<split>/<model>/<timestamp>.json, one file per model.

    Large solves every query, small the even ones; large also answered one query small did not
    (dropped), an older large file (all wrong) is superseded and a demo file is skipped.
    """
    costs = {"small": 0.0001, "large": 0.002}

    def result(model, indexes, solved, **extra):
        records = [
            {
                "index": i,
                "origin_query": f"What is {i} + {i}?",
                "prompt": f"Question: What is {i} + {i}?\nAnswer:",
                "prediction": str(2 * i if solved(i) else 0),
                "raw_output": f"{model}: the answer is {2 * i if solved(i) else 0}",
                "ground_truth": str(2 * i),
                "score": 1.0 if solved(i) else 0.0,
                "prompt_tokens": 15,
                "completion_tokens": 6,
                "cost": costs[model],
            }
            for i in indexes
        ]
        return {
            "dataset_name": "toy_math",
            "split": "test",
            "model_name": model,
            "performance": sum(r["score"] for r in records) / len(records),
            "time_taken": 1.5,
            "prompt_tokens": 15 * len(records),
            "completion_tokens": 6 * len(records),
            "cost": costs[model] * len(records),
            "counts": len(records),
            "records": records,
            **extra,
        }

    files = {
        "small/20250901_120000.json": result("small", range(n), lambda i: i % 2 == 0),
        "small/20250902_120000.json": result("small", range(n), lambda i: False, demo=True),
        "large/20250801_090000.json": result("large", range(n + 1), lambda i: False),
        "large/20250901_130000.json": result("large", range(n + 1), lambda i: True),
    }
    for name, data in files.items():
        path = root / "results" / "bench" / "toy_math" / "test" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return root / "results" / "bench"


def test_an_llmrouterbench_results_folder_becomes_a_bank(fresh_cache_dir, tmp_path):
    source = llmrouterbench_results(tmp_path)
    bank = tmp_path / "lrb.json"
    made = cli.invoke(app, ["bank", str(source), "--format", "llmrouterbench", "--output", str(bank)])
    assert made.exit_code == 0, made.output
    data = json.loads(bank.read_text())
    items = data["dev"] + data["test"]
    assert len(items) == 8, "the query only one model answered is dropped"
    first = next(item for item in items if item["id"] == "toy_math/test/3")
    assert first["input"] == "What is 3 + 3?" and first["eval_name"] == "toy_math"
    assert first["bank"] == {
        "large": {"response": "large: the answer is 6", "score": 1.0, "cost": 0.002},
        "small": {"response": "small: the answer is 0", "score": 0.0, "cost": 0.0001},
    }, "the latest non-demo file of each model is read"
    snippet = yaml.safe_load(made.output.split("\n", 1)[1])
    assert [m["name"] for m in snippet["models"]] == ["large", "small"]
    config = {
        "method": "oracle_routing",
        "models": snippet["models"],
        "dataset": snippet["dataset"],
        "output_dir": str(tmp_path / "oracle"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "oracle" / "metrics.json").read_text())
    assert metrics["score"]["mean"] == 1.0
    lines = [json.loads(line) for line in (tmp_path / "oracle" / "predictions.jsonl").open()]
    assert all(line["output"].startswith(line["routed_to"] + ": the answer is") for line in lines)

    one_file = source / "toy_math" / "test" / "small" / "20250901_120000.json"
    lone = cli.invoke(
        app, ["bank", str(one_file), "--format", "llmrouterbench", "--output", str(tmp_path / "one.json")]
    )
    assert lone.exit_code == 0 and len(yaml.safe_load(lone.output.split("\n", 1)[1])["models"]) == 1
    empty = cli.invoke(app, ["bank", str(tmp_path / "c.yaml"), "--format", "llmrouterbench", "--output", "x.json"])
    assert empty.exit_code == 2 and "no LLMRouterBench result files" in empty.output
