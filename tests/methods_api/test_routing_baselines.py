"""random_routing and oracle_routing on a synthetic pool where model k is right only on domain k."""

from __future__ import annotations

from collections import Counter

from moco_core.testing import set_responder

DOMAINS = ["math", "history", "code"]


def domain_pool(prefix: str) -> list[dict]:
    """Model k answers "right" on domain-k questions and "wrong" elsewhere."""
    models = []
    for domain in DOMAINS:
        path = f"{prefix}-{domain}"
        set_responder(path, lambda request, domain=domain: "right" if request.prompt.startswith(domain) else "wrong")
        models.append({"name": domain, "path": path, "backend": "scripted", "description": f"{domain} expert"})
    return models


def questions(count: int) -> list[tuple[str, str]]:
    return [(f"{DOMAINS[i % 3]} question {i}", "right") for i in range(count)]


def test_random_routing_is_seeded_and_uniform(api):
    data = api.data(questions(3), questions(90))
    result, run = api.run("random_routing", domain_pool("rr"), data, generation={"seed": 3})
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    routes = [line["routed_to"] for line in lines]
    counts = Counter(routes)
    assert set(counts) == set(DOMAINS) and min(counts.values()) >= 15
    assert api.metrics(run)["usage"]["query_share"] == {d: counts[d] / 90 for d in DOMAINS}
    assert all(line["tokens_by_model"] == {line["routed_to"]: 1} for line in lines)
    again, run_again = api.run("random_routing", domain_pool("rr"), data, out="again", generation={"seed": 3})
    assert again.exit_code == 0, again.output
    assert [line["routed_to"] for line in api.predictions(run_again)] == routes
    other, run_other = api.run("random_routing", domain_pool("rr"), data, out="other", generation={"seed": 4})
    assert other.exit_code == 0, other.output
    assert [line["routed_to"] for line in api.predictions(run_other)] != routes


def test_oracle_routes_to_a_model_that_solved_it_and_says_it_is_an_oracle(api):
    data = api.data([("history dev", "right")], [*questions(9), ("poetry question", "right")])
    result, run = api.run("oracle_routing", domain_pool("or"), data)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    assert [line["routed_to"] for line in lines[:9]] == [DOMAINS[i % 3] for i in range(9)]
    assert lines[9]["routed_to"] == "history" and lines[9]["solved_by"] == []  # nobody solved it: dev-best
    assert all(line["oracle"] for line in lines)
    assert [line["score"] for line in lines] == [1.0] * 9 + [0.0]
    summary = api.metrics(run)
    assert summary["oracle"] is True
    assert summary["model_test_scores"] == {d: 0.3 for d in DOMAINS}
    assert summary["usage"]["generated_tokens"] == {d: 10 for d in DOMAINS}


def test_random_routing_refuses_a_one_model_pool_before_loading(api):
    set_responder("solo", "x")
    models = [{"name": "solo", "path": "solo", "backend": "scripted"}]
    result, _ = api.run("random_routing", models, api.data([], [("q", "x")]))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
