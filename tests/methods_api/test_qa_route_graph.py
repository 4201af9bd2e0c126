"""graph_router beyond the happy path: phrasings, chunk independence, reuse, damaged saves, score vs cost."""

from __future__ import annotations

import pytest

from moco_core.testing import set_responder

pytest.importorskip("torch_geometric")

DOMAINS = ["math", "history", "code"]
TOPICS = {
    "math": ["algebra", "integral", "primes", "geometry"],
    "history": ["rome", "ww2", "france", "egypt"],
    "code": ["python", "java", "c sort", "js async"],
    "biology": ["cells", "dna", "evolution", "proteins"],
}
FAST = {"epochs": 100, "lr": 1e-2, "hidden_dim": 16}


def domain_pool(prefix: str, domains: list[str] = DOMAINS) -> list[dict]:
    """Model k answers "right" only on questions that name domain k."""
    models = []
    for domain in domains:
        set_responder(f"{prefix}-{domain}", lambda r, d=domain: "right" if d in r.prompt else "wrong")
        models.append(
            {"name": domain, "path": f"{prefix}-{domain}", "backend": "scripted", "description": f"{domain} expert"}
        )
    return models


def items(template: str, start: int, count: int, domains: list[str] = DOMAINS) -> list[tuple[str, str]]:
    out = []
    for i in range(start, start + count):
        domain = domains[i % len(domains)]
        out.append((template.format(i=i, d=domain, t=TOPICS[domain][(i // len(domains)) % 4]), "right"))
    return out


@pytest.mark.parametrize(
    ("template", "domains"),
    [
        ("{d} question {i}", DOMAINS),
        ("Question {i} ({d}) about {t}", DOMAINS),
        ("Question {i} ({d}) about {t}", [*DOMAINS, "biology"]),
    ],
)
def test_each_domain_goes_to_its_model_whatever_the_phrasing(api, template, domains):
    # The earlier GNN got 10/30, 10/30 and 7/30 here (one model for nearly every query).
    data = api.data(items(template, 0, 36, domains), items(template, 100, 30, domains))
    result, run = api.run("graph_router", domain_pool("ph", domains), data, FAST)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    right = sum(line["routed_to"] in line["input"] for line in lines)
    assert right >= 27, [line["routed_to"] for line in lines]
    usage = api.metrics(run)["usage"]
    assert sum(usage["query_share"].values()) == pytest.approx(1.0)
    assert usage["generated_tokens"] == {d: sum(line["routed_to"] == d for line in lines) for d in domains}


def test_a_test_query_is_routed_the_same_whatever_shares_its_chunk():
    import torch

    from moco_methods_api.graph_router import RouterGraph, build_gnn

    torch.manual_seed(0)
    dev, test, models = torch.randn(6, 5), torch.randn(4, 5), torch.randn(3, 5)
    scores = [[float((q + m) % 2) for m in range(3)] for q in range(6)]
    gnn = build_gnn(5 + 3, 8).eval()

    def logits(rows: list[int]):
        graph = RouterGraph(
            torch.randn(1, 5), torch.cat([dev, test[rows]]), models, [*scores] + [None] * len(rows), [1.0] * 3
        )
        hidden = list(range(6, 6 + len(rows)))
        edge_index, edge_attr, _ = graph.edges(set(hidden))
        queries = torch.tensor([graph.query_node(q) for q in hidden for _ in range(3)])
        nodes = torch.tensor([graph.model_node(m) for _ in hidden for m in range(3)])
        with torch.no_grad():
            return gnn(graph.x, edge_index, edge_attr, queries, nodes).view(len(rows), 3)

    torch.manual_seed(1)
    alone = logits([0])
    torch.manual_seed(1)
    together = logits([0, 1, 2, 3])
    assert torch.allclose(alone[0], together[0], rtol=0, atol=1e-5)  # (sums may run in another order)
    assert alone[0].argmax() == together[0].argmax()


def test_trained_once_reused_and_retrained_when_its_inputs_change(api):
    data = api.data(items("{d} question {i}", 0, 18), items("{d} question {i}", 100, 6))
    models = domain_pool("re")
    first, run = api.run("graph_router", models, data, FAST, out="first")
    assert first.exit_code == 0, first.output
    trained = api.metrics(run)["graph_router"]
    assert trained["reused"] is False
    again, rerun = api.run("graph_router", models, data, FAST, out="again")
    assert again.exit_code == 0, again.output
    reused = api.metrics(rerun)["graph_router"]
    assert reused["reused"] is True and reused["path"] == trained["path"]
    assert [line["routed_to"] for line in api.predictions(rerun)] == [
        line["routed_to"] for line in api.predictions(run)
    ]
    other_params, run_params = api.run("graph_router", models, data, {**FAST, "lr": 5e-3}, out="lr")
    assert other_params.exit_code == 0 and api.metrics(run_params)["graph_router"]["reused"] is False
    more_dev = api.data(items("{d} question {i}", 0, 21), items("{d} question {i}", 100, 6))
    other_dev, run_dev = api.run("graph_router", models, more_dev, FAST, out="dev")
    assert other_dev.exit_code == 0 and api.metrics(run_dev)["graph_router"]["reused"] is False


def test_a_damaged_saved_gnn_is_retrained_not_a_traceback(api):
    data = api.data(items("{d} question {i}", 0, 18), items("{d} question {i}", 100, 6))
    models = domain_pool("dm")
    first, run = api.run("graph_router", models, data, FAST, out="first")
    assert first.exit_code == 0, first.output
    saved = api.metrics(run)["graph_router"]["path"]
    with open(saved, "r+b") as handle:
        handle.truncate(100)
    again, rerun = api.run("graph_router", models, data, FAST, out="again")
    assert again.exit_code == 0, again.output
    assert api.metrics(rerun)["graph_router"]["reused"] is False
    assert [line["routed_to"] for line in api.predictions(rerun)] == [
        line["routed_to"] for line in api.predictions(run)
    ]


def test_cost_scenario_trades_score_for_cheaper_routes(api):
    set_responder("sc-small", lambda r: "right" if "math" in r.prompt else "wrong")
    set_responder("sc-big", "right")
    models = [
        {"name": "small", "path": "sc-small", "backend": "scripted", "description": "small cheap math model"},
        {"name": "big", "path": "sc-big", "backend": "scripted", "description": "big expensive general model"},
    ]
    data = api.data(items("{d} question {i}", 0, 30), items("{d} question {i}", 100, 15))
    shares, scores = {}, {}
    for scenario in ("performance", "cost"):
        params = {**FAST, "scenario": scenario, "model_costs": [1.0, 10.0]}
        result, run = api.run("graph_router", models, data, params, out=scenario)
        assert result.exit_code == 0, result.output
        summary = api.metrics(run)
        shares[scenario], scores[scenario] = summary["usage"]["query_share"], summary["score"]["mean"]
    assert shares["performance"]["big"] >= 0.6  # the 10 non-math queries need the big model
    assert shares["cost"]["small"] >= 0.9  # 0.2 * score - 0.8 * cost: the cheap model wins every query
    assert scores["performance"] > scores["cost"]
