from __future__ import annotations


def member(name: str, dev_right: bool = False):
    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "A" if dev_right else "D"
        if "Give brief, specific feedback" in prompt:
            return f"critique by {name}"
        if "Summarise" in prompt:
            return f"B summary by {name}"
        if "Feedback from other assistants" in prompt:
            return f"C revised by {name}"
        return f"A answer of {name}"

    return respond


def test_critiques_come_from_other_models_only(text):
    names = ["a", "b", "c", "d"]
    models = text.pool({n: member(n, dev_right=n == "c") for n in names})
    lines = text.ok("multiagent_feedback", models, {"rounds": 2, "feedback_count": 2})
    for name in names:
        revisions = text.prompts(name, "Feedback from other assistants")
        assert len(revisions) == 2
        for prompt in revisions:
            critiques = prompt.split("Feedback from other assistants")[1]
            assert critiques.count("critique by") == 2
            assert f"critique by {name}" not in critiques
    for name in names:
        for prompt in text.prompts(name, "Give brief, specific feedback"):
            assert prompt.count("answer of") == 1  # a critic sees only the receiver's answer
            assert f"A answer of {name}" not in prompt  # and never critiques itself
    line = lines[0]
    assert line["summarizer"] == "c" and line["output"] == "B summary by c"
    (round_two,) = line["critiques"]
    for receiver, critiques in round_two.items():
        critics = [c["critic"] for c in critiques]
        assert len(critics) == 2 and receiver not in critics
        assert all(c["text"] == f"critique by {c['critic']}" for c in critiques)
    assert line["rounds"][1] == {n: f"C revised by {n}" for n in names}


def test_feedback_count_is_capped_and_critics_are_seeded(text):
    models = text.pool({n: member(n, dev_right=n == "a") for n in "ab"})
    first = text.ok("multiagent_feedback", models, {"rounds": 3, "feedback_count": 5}, out="one")
    again = text.ok("multiagent_feedback", models, {"rounds": 3, "feedback_count": 5}, out="two")
    assert [len(r["a"]) for r in first[0]["critiques"]] == [1, 1]
    assert first[0]["critiques"][0]["a"][0]["critic"] == "b"
    assert [line["critiques"] for line in again] == [line["critiques"] for line in first]
