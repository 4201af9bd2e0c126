"""nudging end to end on two tiny models with different tokenizers, through ``moco run``."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

GENERATION = {"max_new_tokens": 12, "temperature": 0.0, "batch_size": 4}


def pool(tiny_pool_paths, other_tokenizer_model) -> list[dict]:
    return [{"name": "base", "path": str(tiny_pool_paths[0])}, {"name": "nudger", "path": str(other_tokenizer_model)}]


def test_nudging_runs_and_reports_who_wrote_what(api, tiny_pool_paths, other_tokenizer_model):
    data = api.data([("dev question", "x")], [(f"test question {i}", "x") for i in range(5)])
    models = pool(tiny_pool_paths, other_tokenizer_model)
    params = {"gamma": 0.1, "gamma_search": [0.1, 0.3]}
    result, run = api.run("nudging", models, data, params, generation=GENERATION, hardware={"device": "cpu"})
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    for line in lines:
        assert "".join(span["text"] for span in line["spans"]).strip() == line["output"]
        assert sum(line["tokens_by_model"].values()) == sum(span["tokens"] for span in line["spans"])
        assert all((e["base_top1"] >= 0.1) == (e["to"] == "base") for e in line["handovers"])
    usage = api.metrics(run)["usage"]
    assert set(usage["generated_tokens"]) == {"base", "nudger"}
    assert sum(usage["token_share"].values()) == pytest.approx(1.0)
    assert {s["gamma"] for s in api.metrics(run)["search"]} == {0.1, 0.3}
    again, rerun = api.run("nudging", models, data, params, out="again", generation=GENERATION)
    assert again.exit_code == 0, again.output
    assert api.metrics(rerun)["generations"]["made"] == 0
    assert [line["output"] for line in api.predictions(rerun)] == [line["output"] for line in lines]


def test_nudging_refuses_bad_member_indices_before_loading(api, tiny_pool_paths, other_tokenizer_model):
    data = api.data([], [("q", "x")])
    models = pool(tiny_pool_paths, other_tokenizer_model)
    result, _ = api.run("nudging", models, data, {"nudging_model": 2})
    assert result.exit_code == 2 and "params.nudging_model" in result.output
    assert len(result.output.strip().splitlines()) == 1
