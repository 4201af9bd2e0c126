"""graph_router learns to send domain k to the model right on domain k; scenario and costs matter."""

from __future__ import annotations

import pytest

from moco_core.testing import set_responder
from moco_methods_api.graph_router import best_labels, macro_f1

pytestmark = pytest.mark.slow

DOMAINS = ["math", "history", "code"]
TOPICS = {
    "math": ["algebra equation", "integral of x squared", "prime numbers", "geometry triangle angles"],
    "history": ["the roman empire", "world war two", "the french revolution", "ancient egypt pharaohs"],
    "code": ["python list comprehension", "a java class", "sorting algorithm in c", "javascript async function"],
}


def test_labels_trade_score_against_cost():
    scores = [[1.0, 0.9], [0.0, 1.0]]
    assert best_labels(scores, [1.0, 1.0], "performance") == [0, 1]
    assert best_labels(scores, [10.0, 1.0], "cost") == [1, 1]
    assert macro_f1([0, 1, 1], [0, 1, 0], 2) == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_graph_router_routes_each_domain(api):
    pytest.importorskip("torch_geometric")
    models = []
    for domain in DOMAINS:
        set_responder(f"gr-{domain}", lambda r, d=domain: "right" if d in r.prompt else "wrong")
        models.append(
            {"name": domain, "path": f"gr-{domain}", "backend": "scripted", "description": f"{domain} expert"}
        )

    def items(start: int, count: int) -> list[tuple[str, str]]:
        out = []
        for i in range(start, start + count):
            domain = DOMAINS[i % 3]
            out.append((f"Question {i} ({domain}) about {TOPICS[domain][(i // 3) % 4]}", "right"))
        return out

    params = {"epochs": 150, "lr": 1e-2, "hidden_dim": 16}
    result, run = api.run("graph_router", models, api.data(items(0, 36), items(100, 30)), params)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    right = sum(line["routed_to"] in line["input"] for line in lines)
    assert right >= 27, [line["routed_to"] for line in lines]
    summary = api.metrics(run)
    assert summary["graph_router"]["dev_labels"] == {"math": 12, "history": 12, "code": 12}
    again, rerun = api.run("graph_router", models, api.data(items(0, 36), items(100, 30)), params, out="again")
    assert again.exit_code == 0
    assert [line["routed_to"] for line in api.predictions(rerun)] == [line["routed_to"] for line in lines]


def test_bad_costs_are_refused_before_loading(api):
    models = [{"name": n, "path": n, "backend": "scripted"} for n in ("a", "b")]
    result, _ = api.run("graph_router", models, api.data([], [("q", "x")]), {"model_costs": [1.0]})
    assert result.exit_code == 2 and "params.model_costs" in result.output
