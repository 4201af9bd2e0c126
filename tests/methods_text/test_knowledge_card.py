from __future__ import annotations


def member(name: str, dev_right: bool = False):
    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "A" if dev_right else "D"
        if "background knowledge" in prompt:
            return f"fact from {name}"
        if prompt.startswith("Knowledge:"):
            return f"A answer by {name}"
        return "B"

    return respond


def test_dev_best_answers_with_every_paragraph(text):
    models = text.pool({n: member(n, dev_right=n == "y") for n in "xyz"})
    lines = text.ok("knowledge_card", models)
    (prompt, _) = text.prompts("y", "Knowledge:")
    assert all(f"fact from {n}" in prompt for n in "xyz") and "test question 0" in prompt
    assert lines[0]["output"] == "A answer by y" and lines[0]["knowledge"] == {n: f"fact from {n}" for n in "xyz"}


def test_exclude_self_drops_the_answerers_paragraph(text):
    models = text.pool({n: member(n, dev_right=n == "y") for n in "xyz"})
    text.ok("knowledge_card", models, {"exclude_self": True})
    (prompt, _) = text.prompts("y", "Knowledge:")
    assert "fact from y" not in prompt and "fact from x" in prompt and "fact from z" in prompt
