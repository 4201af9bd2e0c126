from __future__ import annotations

from moco_methods_text.rounds import plurality


def by_sample(*letters: str):
    def respond(request):
        if request.prompt.startswith("dev"):
            return "A"
        return f"{letters[request.sample % len(letters)]} sample {request.sample}"

    return respond


def test_a_a_b_votes_a(text):
    models = text.pool({"m": by_sample("A", "A", "B")})
    lines = text.ok("self_consistency", models, {"samples": 3})
    assert lines[0]["vote"] == "A" and lines[0]["votes"] == {"A": 2, "B": 1}
    assert lines[0]["output"] == "A sample 0" and lines[0]["score"] == 1.0


def test_default_model_is_the_dev_best_and_can_be_named(text):
    def wrong(request):
        return "D" if request.prompt.startswith("dev") else "B"

    models = text.pool({"bad": wrong, "good": by_sample("C", "B", "C")})
    lines = text.ok("self_consistency", models, {"samples": 3})
    assert lines[0]["model"] == "good" and lines[0]["vote"] == "C"
    named = text.ok("self_consistency", models, {"samples": 2, "model": "bad"}, out="named")
    assert named[0]["vote"] == "B"
    missing = text.run("self_consistency", models, {"model": "nobody"}, out="missing")
    assert missing.exit_code == 2 and "params.model" in missing.output


def test_plurality_ignores_failed_extractions_and_breaks_ties_by_first_seen():
    assert plurality([None, "B", "A", "A", "B", None]) == ("B", {"B": 2, "A": 2})
    assert plurality([None, None]) == (None, {})


def test_needs_an_extractor_before_loading(text):
    models = text.pool({"m": "x"})
    data = text.root / "free.json"
    data.write_text('{"task_type": "free", "dev": [], "test": [{"id": 1, "input": "q", "output": "x"}]}')
    result = text.run("self_consistency", models, data=data)
    assert result.exit_code == 2 and "has no answer extractor" in result.output
    assert not text.seen["m"]
