from __future__ import annotations


def member(name: str, dev_right: bool = False):
    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "A" if dev_right else "D"
        if "Synthesise" in prompt:
            return f"A aggregate by {name}"
        if "Critically evaluate" in prompt:
            return f"C layer-2 answer of {name}"
        return f"B proposal of {name}"

    return respond


def test_aggregator_sees_every_proposer_of_the_last_layer(text):
    names = ["p", "q", "r"]
    models = text.pool({n: member(n, dev_right=n == "q") for n in names})
    lines = text.ok("mixture_of_agents", models, {"layers": 2})
    for name in names:
        for prompt in text.prompts(name, "Critically evaluate"):
            assert all(f"B proposal of {n}" in prompt for n in names)
    (aggregate, _) = text.prompts("q", "Synthesise")
    assert all(f"C layer-2 answer of {n}" in aggregate for n in names)
    assert "proposal" not in aggregate
    line = lines[0]
    assert line["aggregator"] == "q" and line["output"] == "A aggregate by q" and line["score"] == 1.0
    assert line["layers"][0] == {n: f"B proposal of {n}" for n in names}


def test_one_layer_aggregates_the_initial_answers(text):
    models = text.pool({n: member(n, dev_right=n == "p") for n in ("p", "q")})
    text.ok("mixture_of_agents", models)
    assert not text.prompts("q", "Critically evaluate")
    assert "B proposal of q" in text.prompts("p", "Synthesise")[0]
