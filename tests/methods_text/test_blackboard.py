from __future__ import annotations

from moco_methods_text.blackboard import conclusion_of, parse_action


def agent(name: str, terminate_from: int | None, verdict: str = "B", vote: str = "1"):
    """Chooses 'terminate' once the board has ``terminate_from`` entries, else 'propose'."""

    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "D"
        if "Which conclusion is correct" in prompt:
            return vote
        board = prompt.split("Blackboard so far:\n")[1]
        entries = 0 if board.startswith("(empty)") else board.count("\n[") + 1
        if "Choose your next action" in prompt:
            return "terminate" if terminate_from is not None and entries >= terminate_from else "propose"
        if "Your action: terminate" in prompt:
            return f"Done.\nFINAL: {verdict} by {name}"
        return f"strategy {entries} of {name}"

    return respond


def test_stops_on_the_first_termination(text):
    models = text.pool({"a": agent("a", 2)})
    lines = text.ok("blackboard", models, {"max_iterations": 6})
    line = lines[0]
    assert line["stopped_at"] == 3
    assert [e["action"] for e in line["blackboard"]] == ["propose", "propose", "terminate"]
    assert line["output"] == "B by a" and line["score"] == 0.0
    assert line["conclusions"] == ["B by a"]


def test_needs_the_configured_stop_votes(text):
    models = text.pool({"a": agent("a", 0, "A"), "b": agent("b", None)})
    lines = text.ok("blackboard", models, {"max_iterations": 3, "agents_per_turn": 2, "stop_votes": 2})
    line = lines[0]
    assert line["stopped_at"] is None
    assert len(line["blackboard"]) == 6
    assert {e["action"] for e in line["blackboard"] if e["agent"] == "a"} == {"terminate"}
    assert line["conclusions"] == ["A by a", "strategy 4 of b"]
    assert line["output"] == "A by a"  # both agents voted for conclusion 1


def test_several_conclusions_are_settled_by_every_agent(text):
    models = text.pool(
        {"a": agent("a", 0, "A", vote="2"), "b": agent("b", 0, "C", vote="2"), "c": agent("c", 0, vote="1")}
    )
    lines = text.ok("blackboard", models, {"agents_per_turn": 3, "stop_votes": 2})
    line = lines[0]
    assert line["stopped_at"] == 1
    assert len(line["conclusions"]) == 3 and line["conclusion_votes"] == {"a": 2, "b": 2, "c": 1}
    assert line["output"] == line["conclusions"][1]


def test_invalid_choices_are_retried_with_fresh_samples(text):
    def flaky(request):
        if "Choose your next action" in request.prompt:
            return "terminate" if request.sample == 2 else "I am not sure"
        return "FINAL: A"

    models = text.pool({"a": flaky})
    lines = text.ok("blackboard", models, {"max_iterations": 2})
    assert lines[0]["stopped_at"] == 1 and lines[0]["output"] == "A" and lines[0]["score"] == 1.0
    assert sorted(r.sample for r in text.seen["a"] if "Choose" in r.prompt) == [0, 0, 1, 1, 2, 2]


def test_parsers():
    assert parse_action("I will Critique the plan") == "critique"
    assert parse_action("no idea") is None
    assert conclusion_of("work\nFINAL: 42") == "42"
    assert conclusion_of("just text") == "just text"


def test_impossible_stop_votes_are_refused(text):
    models = text.pool({"a": "A", "b": "B"})
    result = text.run("blackboard", models, {"agents_per_turn": 1, "stop_votes": 2})
    assert result.exit_code == 2 and "params.stop_votes" in result.output
    result = text.run("blackboard", models, {"agents_per_turn": 3}, out="too_many")
    assert result.exit_code == 2 and "params.agents_per_turn" in result.output
