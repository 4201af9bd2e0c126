"""Routers and cascade end to end on tiny Hugging Face models (real log-probs), and resuming a run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

GENERATION = {"max_new_tokens": 6, "temperature": 0.7, "seed": 1, "batch_size": 4}


def tiny_models(paths) -> list[dict]:
    return [{"name": f"m{i}", "path": str(p), "description": f"tiny model {i}"} for i, p in enumerate(paths)]


@pytest.mark.parametrize(
    ("method", "params"),
    [("random_routing", {}), ("oracle_routing", {}), ("cascade", {}), ("cascade", {"confidence": "self_ask"})],
)
def test_method_runs_on_tiny_models(api, tiny_pool_paths, method, params):
    data = api.data([(f"dev question {i}", "x") for i in range(4)], [(f"test question {i}", "x") for i in range(5)])
    result, run = api.run(method, tiny_models(tiny_pool_paths), data, params, generation=GENERATION)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert [line["index"] for line in lines] == list(range(5))
    usage = api.metrics(run)["usage"]
    assert sum(usage["query_share"].values()) == pytest.approx(1.0)
    assert sum(usage["generated_tokens"].values()) == sum(sum(line["tokens_by_model"].values()) for line in lines)
    if method == "cascade" and not params:
        thresholds = api.metrics(run)["thresholds"]
        for line in lines:
            for step in line["deferral_chain"][:-1]:
                assert step["threshold"] == thresholds[step["model"]]
                assert step["deferred"] == (step["confidence"] < step["threshold"])


def test_interrupted_nudging_run_resumes_with_whole_totals(api, tiny_pool_paths):
    data = api.data([], [(f"test question {i}", "x") for i in range(6)])
    models = tiny_models(tiny_pool_paths[:2])
    generation = {"max_new_tokens": 8, "temperature": 0.0}
    result, run = api.run("nudging", models, data, {"gamma": 0.2}, generation=generation)
    assert result.exit_code == 0, result.output
    full = api.predictions(run)
    totals = api.metrics(run)["usage"]["generated_tokens"]
    predictions = run / "predictions.jsonl"
    kept = predictions.read_text().splitlines(keepends=True)[:2]
    predictions.write_text("".join(kept) + '{"index": 2, "id": "t2", "outp')  # killed mid-line
    again, _ = api.run("nudging", models, data, {"gamma": 0.2}, generation=generation)
    assert again.exit_code == 0, again.output
    resumed = api.predictions(run)
    assert [line["index"] for line in resumed] == list(range(6))
    assert [line["output"] for line in resumed] == [line["output"] for line in full]
    assert api.metrics(run)["usage"]["generated_tokens"] == totals
