from __future__ import annotations


def member(name: str, letter: str, dev_right: bool):
    """Answers dev by ``dev_right``; test first with ``letter``, later rounds revise to C; summaries say B."""

    def respond(request):
        prompt = request.prompt
        if prompt.startswith("dev"):
            return "A" if dev_right else "D"
        if "Summarise" in prompt:
            return f"B summary by {name}"
        if "Your previous answer" in prompt:
            return f"C revised by {name}"
        return f"{letter} first answer of {name}"

    return respond


def test_round_two_prompts_carry_the_others_answers(text):
    models = text.pool({"a": member("a", "A", False), "b": member("b", "B", True), "c": member("c", "D", False)})
    lines = text.ok("multiagent_debate", models, {"rounds": 3})
    revisions = text.prompts("a", "Your previous answer")
    first_round = [p for p in revisions if "first answer" in p]
    assert len(first_round) == 2  # one per test example in round 2
    for prompt in first_round:
        assert "A first answer of a" in prompt.split("Answers from other agents")[0]
        others = prompt.split("Answers from other agents")[1]
        assert "B first answer of b" in others and "D first answer of c" in others
        assert "first answer of a" not in others
    round_three = [p for p in revisions if "C revised by b" in p]
    assert len(round_three) == 2 and all("first answer" not in p for p in round_three)
    line = lines[0]
    assert line["summarizer"] == "b" and line["output"] == "B summary by b"
    assert [sorted(r) for r in line["rounds"]] == [["a", "b", "c"]] * 3
    assert line["rounds"][0]["c"] == "D first answer of c" and line["rounds"][2]["a"] == "C revised by a"
    summary_prompt = text.prompts("b", "Summarise")[0]
    assert all(f"C revised by {n}" in summary_prompt for n in "abc")


def test_one_round_is_no_revision_and_refine_is_an_alias(text):
    models = text.pool({"a": member("a", "A", True), "b": member("b", "B", False)})
    debate = text.ok("multiagent_debate", models, {"rounds": 1}, out="debate")
    refine = text.ok("multiagent_refine", models, {"rounds": 1}, out="refine")
    assert not text.prompts("a", "Your previous answer")
    assert [line["output"] for line in debate] == [line["output"] for line in refine] == ["B summary by a"] * 2
    assert text.metrics("refine")["method"] == "multiagent_refine"


def test_template_override_is_used_and_checked(text):
    models = text.pool({"a": member("a", "A", True), "b": member("b", "B", False)})
    custom = "Q: {question} | mine: {own_answer} | theirs: {other_answers} | Your previous answer"
    text.ok("multiagent_debate", models, {"rounds": 2, "revise_prompt": custom})
    assert text.prompts("a", "Your previous answer")[0].startswith("Q: test question 0 | mine: A first answer of a")
    bad = text.run("multiagent_debate", models, {"revise_prompt": "{question} {rival}"}, out="bad")
    assert bad.exit_code == 2
    assert "revise_prompt" in bad.output and "unknown placeholder {rival}" in bad.output


def test_needs_two_models_and_a_dev_split_before_loading(text):
    one = text.pool({"a": "A"})
    result = text.run("multiagent_debate", one, out="one")
    assert result.exit_code == 2 and "multiagent_debate needs >=2 models" in result.output
    models = text.pool({"a": "A", "b": "B"})
    result = text.run("multiagent_debate", models, data=text.data(n_dev=0), out="nodev")
    assert result.exit_code == 2 and "no dev split" in result.output
    assert not text.seen["a"] and not text.seen["b"]
