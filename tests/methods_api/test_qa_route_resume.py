"""Every router resumes after an interruption with the same routes, outputs and whole-run totals."""

from __future__ import annotations

import pytest

from moco_core.testing import set_responder

DOMAINS = ["math", "history", "code"]
TOPICS = ["algebra", "rome", "python", "primes"]


def domain_pool(prefix: str) -> list[dict]:
    models = []
    for domain in DOMAINS:

        def respond(request, domain=domain):
            if request.prompt.startswith("Choose the model"):
                return f"Model {1 + sum(map(ord, request.prompt)) % 3}"
            return "right" if domain in request.prompt else "wrong"

        set_responder(f"{prefix}-{domain}", respond)
        models.append(
            {"name": domain, "path": f"{prefix}-{domain}", "backend": "scripted", "description": f"{domain} expert"}
        )
    return models


def items(start: int, count: int) -> list[tuple[str, str]]:
    return [(f"{DOMAINS[i % 3]} question {i} on {TOPICS[i % 4]}", "right") for i in range(start, start + count)]


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("random_routing", {}),
        ("oracle_routing", {}),
        ("single_model", {}),
        ("prompt_routing", {"router": "code"}),
        ("graph_router", {"epochs": 30, "lr": 1e-2, "hidden_dim": 8}),
    ],
)
def test_resumed_router_matches_the_uninterrupted_run(api, method, params):
    if method == "graph_router":
        pytest.importorskip("torch_geometric")
    data = api.data(items(0, 12), items(100, 40))
    models = domain_pool(method[:3])
    generation = {"batch_size": 2}  # chunks of 32: the rerun's first chunk starts mid-way through the first run's
    result, run = api.run(method, models, data, params, generation=generation)
    assert result.exit_code == 0, result.output
    full, usage = api.predictions(run), api.metrics(run)["usage"]
    predictions = run / "predictions.jsonl"
    kept = predictions.read_text().splitlines(keepends=True)[:5]
    predictions.write_text("".join(kept) + '{"index": 5, "id": "t5", "outp')  # killed mid-line
    again, _ = api.run(method, models, data, params, generation=generation)
    assert again.exit_code == 0, again.output
    resumed = api.predictions(run)
    assert [line["index"] for line in resumed] == list(range(40))
    keys = ("output", "routed_to", "tokens_by_model")
    assert [{k: line[k] for k in keys} for line in resumed] == [{k: line[k] for k in keys} for line in full]
    assert api.metrics(run)["usage"] == usage
    assert sum(usage["query_share"].values()) == pytest.approx(1.0)
