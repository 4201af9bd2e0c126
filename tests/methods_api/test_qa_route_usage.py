"""Who did what, for every router: query shares and generated tokens per model in metrics.json,
the routed model and its token counts per prediction; trained_router's training job is the same
for the same pool, dev data and params (so the training engine reuses it) and new otherwise."""

from __future__ import annotations

import pytest

from moco_core.testing import RecordingTraining, registered_plugin, set_responder

DOMAINS = ["math", "history", "code"]


def domain_pool(prefix: str, router_reply: str | None = None) -> list[dict]:
    """Model k answers "right" on domain-k questions; the math model also routes (replying ``router_reply``)."""
    models = []
    for domain in DOMAINS:

        def respond(request, domain=domain):
            if request.prompt.startswith("Choose the model"):
                return router_reply or "no idea"
            return "right" if request.prompt.startswith(domain) else "wrong"

        set_responder(f"{prefix}-{domain}", respond)
        models.append(
            {"name": domain, "path": f"{prefix}-{domain}", "backend": "scripted", "description": f"{domain} expert"}
        )
    return models


def assert_usage_adds_up(lines: list[dict], usage: dict, names: list[str]) -> None:
    assert sum(usage["query_share"].values()) == pytest.approx(1.0)
    assert usage["query_share"] == {n: sum(line["routed_to"] == n for line in lines) / len(lines) for n in names}
    totals = {n: sum(line["tokens_by_model"].get(n, 0) for line in lines) for n in usage["generated_tokens"]}
    assert usage["generated_tokens"] == totals


def test_prompt_routing_reports_shares_and_counts_the_routers_tokens(api):
    models = domain_pool("pr", router_reply="Model 2")
    data = api.data([("math dev", "right")], [("history q1", "right"), ("code q2", "right"), ("history q3", "right")])
    result, run = api.run("prompt_routing", models, data, {"router": "code"})
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert [line["routed_to"] for line in lines] == ["history"] * 3
    # each scripted generation is one token: the router's reply, then the routed model's answer
    assert [line["tokens_by_model"] for line in lines] == [{"code": 1, "history": 1}] * 3
    usage = api.metrics(run)["usage"]
    assert usage["query_share"] == {"math": 0.0, "history": 1.0, "code": 0.0}
    assert usage["generated_tokens"] == {"math": 0, "history": 3, "code": 3}
    assert_usage_adds_up(lines, usage, DOMAINS)


def test_single_model_reports_every_models_tokens_and_the_dev_best_share(api):
    data = api.data([("history dev", "right")], [("math q", "right"), ("code q", "right")])
    result, run = api.run("single_model", domain_pool("sm"), data)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert all(line["routed_to"] == "history" == line["model"] for line in lines)
    usage = api.metrics(run)["usage"]
    assert usage["query_share"] == {"math": 0.0, "history": 1.0, "code": 0.0}
    assert set(usage["generated_tokens"]) == set(DOMAINS)
    assert_usage_adds_up(lines, usage, DOMAINS)


@pytest.mark.parametrize("method", ["random_routing", "oracle_routing"])
def test_baselines_report_shares_that_add_up(api, method):
    data = api.data([("math dev", "right")], [(f"{DOMAINS[i % 3]} q{i}", "right") for i in range(9)])
    result, run = api.run(method, domain_pool(method[:2]), data)
    assert result.exit_code == 0, result.output
    assert_usage_adds_up(api.predictions(run), api.metrics(run)["usage"], DOMAINS)


def test_trained_router_job_is_keyed_by_pool_dev_data_and_params(api, tiny_pool_paths):
    from moco_core.training import check_job, training_recipe

    training = RecordingTraining(str(tiny_pool_paths[0]))
    pool = [{"name": "router", "path": str(tiny_pool_paths[0])}, *domain_pool("tr")]
    dev = [(f"{DOMAINS[i % 3]} dev {i}", "right") for i in range(6)]
    test = [(f"{DOMAINS[i % 3]} q{i}", "right") for i in range(3)]
    generation = {"max_new_tokens": 4, "temperature": 0.0}
    runs = [
        ("first", dev, {"epochs": 2}),
        ("same", dev, {"epochs": 2}),
        ("lr", dev, {"epochs": 2, "lr": 1e-4}),
        ("dev", dev[:5], {"epochs": 2}),
    ]
    with registered_plugin(training, "recording-training"):
        for out, dev_items, params in runs:
            result, run = api.run("trained_router", pool, api.data(dev_items, test), params, out, generation=generation)
            assert result.exit_code == 0, result.output
            if out == "first":
                lines, usage = api.predictions(run), api.metrics(run)["usage"]
    recipes = [training_recipe(job, check_job(job)) for job in training.jobs]
    assert recipes[0] == recipes[1]  # same pool, dev data and params: the training engine reuses the folder
    assert recipes[2] != recipes[0] and recipes[3] != recipes[0]
    assert [row["completion"] for row in training.jobs[0].data] == ["Model 2", "Model 3", "Model 4"] * 2
    assert_usage_adds_up(lines, usage, ["router", *DOMAINS])
    assert usage["generated_tokens"]["trained-router"] > 0  # the router LM's replies are cost too
    assert "trained-router" not in usage["query_share"]
