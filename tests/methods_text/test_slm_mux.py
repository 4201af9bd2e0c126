from __future__ import annotations


def by_sample(*letters: str, dev: str = "D"):
    def respond(request):
        if request.prompt.startswith("dev"):
            return dev
        return f"{letters[request.sample % len(letters)]} sample {request.sample}"

    return respond


def test_picks_the_most_self_consistent_model(text):
    models = text.pool(
        {"wobbly": by_sample("A", "B", "C", "A", "D", dev="A"), "steady": by_sample("B", "B", "B", "C", "B")}
    )
    lines = text.ok("slm_mux", models, {"samples_per_model": 5})
    line = lines[0]
    assert line["confidence"] == {"wobbly": 0.4, "steady": 0.8}
    assert line["chosen_model"] == "steady" and line["vote"] == "B" and line["output"] == "B sample 0"


def test_unparseable_samples_lower_confidence(text):
    models = text.pool({"quiet": by_sample("A", "x", "x", "x"), "noisy": by_sample("B", "B", "C", "D")})
    line = text.ok("slm_mux", models, {"samples_per_model": 4, "tie_break": "model_order"})[0]
    assert line["confidence"] == {"quiet": 0.25, "noisy": 0.5}
    assert line["chosen_model"] == "noisy"


def test_ties_go_to_the_dev_best(text):
    models = text.pool({"first": by_sample("B", dev="D"), "second": by_sample("C", dev="A")})
    assert text.ok("slm_mux", models, {"samples_per_model": 2})[0]["chosen_model"] == "second"
    order = text.ok("slm_mux", models, {"samples_per_model": 2, "tie_break": "model_order"}, out="order")
    assert order[0]["chosen_model"] == "first"
