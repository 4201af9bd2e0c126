from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.testing import ScriptedBackendPlugin, registered_plugin, set_responder

cli = CliRunner()


def run_vote(tmp_path, answers: dict[str, str], params: dict, dev_right: set[str]) -> list[dict]:
    """Each scripted model answers test items with its fixed letter; dev answers decide the ranking."""
    for name, letter in answers.items():
        right = name in dev_right

        def respond(request, letter=letter, right=right):
            if request.prompt.startswith("dev"):
                return "The answer is (A)." if right else "The answer is (D)."
            return f"The answer is ({letter})."

        set_responder(f"vote-{name}", respond)
    item = {"choices": {"A": "a", "B": "b", "C": "c", "D": "d"}, "answer": "A"}
    data = {
        "name": "votes",
        "task_type": "multiple_choice",
        "dev": [{"id": "d", "question": "dev question", **item}],
        "test": [{"id": f"t{i}", "question": f"test question {i}", **item} for i in range(3)],
    }
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "d.json").write_text(json.dumps(data))
    config = {
        "method": "majority_vote",
        "params": params,
        "models": [{"name": n, "path": f"vote-{n}", "backend": "scripted"} for n in answers],
        "dataset": {"path": str(tmp_path / "d.json")},
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]


def test_plurality_wins(scripted_with_evals, tmp_path):
    lines = run_vote(tmp_path, {"a": "B", "b": "B", "c": "A"}, {}, dev_right={"c"})
    assert all(line["vote"] == "B" and line["votes"] == {"B": 2, "A": 1} for line in lines)
    assert lines[0]["answers"] == {"c": ["A"], "a": ["B"], "b": ["B"]}  # listed by dev rank
    assert lines[0]["score"] == 0.0


def test_tie_goes_to_best_dev_model(scripted_with_evals, tmp_path):
    lines = run_vote(tmp_path, {"a": "B", "b": "C"}, {"tie_break": "dev"}, dev_right={"b"})
    assert all(line["vote"] == "C" for line in lines)


def test_random_tie_break_is_seeded(scripted_with_evals, tmp_path):
    models, params = {"a": "B", "b": "C"}, {"tie_break": "random"}
    first = [line["vote"] for line in run_vote(tmp_path / "one", models, params, dev_right=set())]
    again = [line["vote"] for line in run_vote(tmp_path / "two", models, params, dev_right=set())]
    assert set(first) <= {"B", "C"}
    assert again == first


def test_samples_per_model_each_vote(scripted_with_evals, tmp_path):
    lines = run_vote(tmp_path, {"a": "B", "b": "C", "c": "C"}, {"samples_per_model": 3}, dev_right=set())
    assert lines[0]["votes"] == {"B": 3, "C": 6}
    assert lines[0]["vote"] == "C"


def test_needs_an_answer_extractor(fresh_cache_dir, tmp_path):
    from moco_core.hookspecs import hookimpl
    from moco_core.registry import ScorerSpec

    class OpenEnded:
        @hookimpl
        def moco_register_scorers(self, register):
            register(ScorerSpec(task_type="open_ended", prompt=lambda e: e.question, score=lambda e, o, x=None: [0.0]))

    data = {"task_type": "open_ended", "dev": [], "test": [{"id": 1, "input": "hi", "output": "x"}]}
    (tmp_path / "d.json").write_text(json.dumps(data))
    config = {
        "method": "majority_vote",
        "models": [{"name": "a", "path": "vote-a", "backend": "scripted"}],
        "dataset": {"path": str(tmp_path / "d.json")},
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with registered_plugin(ScriptedBackendPlugin(), "scripted"), registered_plugin(OpenEnded(), "open"):
        set_responder("vote-a", "x")
        result = cli.invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2
    assert "majority_vote needs a task type with a definitive answer" in result.output


def test_default_tie_break_is_random_and_needs_no_dev_split(text):
    from moco_methods_text.params import MajorityVoteParams

    assert MajorityVoteParams().tie_break == "random"
    models = text.pool({"a": "B", "b": "C"})
    lines = text.ok("majority_vote", models, data=text.data(n_test=4, n_dev=0))
    assert {line["vote"] for line in lines} <= {"B", "C"} and all(line["votes"] == {"B": 1, "C": 1} for line in lines)
    refused = text.run("majority_vote", models, {"tie_break": "dev"}, data=text.data(n_dev=0), out="dev")
    assert refused.exit_code == 2 and "no dev split" in refused.output
