"""Tests of the example method through the real ``moco run`` command, with scripted models.

``moco_core.testing`` provides a ``scripted`` backend whose "models" are Python functions, so
the method's logic is tested exactly, offline and in milliseconds.  Copy this pattern for your
own method: script what each model says, run the CLI in-process, read predictions.jsonl.
"""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import reset as reset_plugins
from moco_core.testing import (
    ScriptedBackend,
    ScriptedBackendPlugin,
    ScriptedTaskTypesPlugin,
    registered_plugin,
    set_responder,
)
from moco_plugin_template import plugin as template_plugin
from moco_plugin_template.params import LongestAnswerParams

cli = CliRunner()


@pytest.fixture()
def moco(monkeypatch):
    """A plugin manager holding only core, the scripted backend, the test task types and this plugin.

    ``MOCO_LOAD_PLUGINS=""`` keeps installed plugins (this one too, once pip-installed) out of the
    tests, so registering the module by hand never clashes with its own entry point.
    """
    monkeypatch.setenv("MOCO_LOAD_PLUGINS", "")
    reset_plugins()
    try:
        with (
            registered_plugin(ScriptedBackendPlugin(), "scripted"),
            registered_plugin(ScriptedTaskTypesPlugin(), "test-task-types"),
            registered_plugin(template_plugin, "template") as registry,
        ):
            ScriptedBackend.calls.clear()
            yield registry
    finally:
        reset_plugins()


def script_models():
    set_responder("says-short", "A")
    set_responder("says-long", "B, because it is longer")
    set_responder("rambles", "hmm, well, I am really not sure about this one at all")


def write_data(tmp_path, task_type="letter", n_test=3, n_dev=2):
    def item(i, split):
        return {"id": f"q{i}", "question": f"{split} question {i}", "choices": {"A": "x", "B": "y"}, "answer": "A"}

    data = {
        "name": "letters",
        "task_type": task_type,
        "dev": [item(i, "dev") for i in range(n_dev)],
        "test": [item(i, "test") for i in range(n_test)],
    }
    path = tmp_path / "letters.json"
    path.write_text(json.dumps(data))
    return path


def run(tmp_path, task_type="letter", **params):
    config = {
        "method": "template_longest_answer",
        "params": params,
        "models": [
            {"name": "short", "path": "says-short", "backend": "scripted"},
            {"name": "long", "path": "says-long", "backend": "scripted"},
            {"name": "rambler", "path": "rambles", "backend": "scripted"},
        ],
        "dataset": {"path": str(write_data(tmp_path, task_type))},
        "generation": {"batch_size": 8, "max_new_tokens": 8},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return cli.invoke(app, ["run", str(path)])


def read_outputs(tmp_path):
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    return lines, metrics


def test_registers_a_text_level_method(moco):
    spec = moco.methods["template_longest_answer"]
    assert spec.level == "text"
    assert spec.params is LongestAnswerParams
    assert spec.load().__name__ == "LongestAnswer"


def test_longest_response_with_an_answer_wins(moco, tmp_path):
    script_models()
    result = run(tmp_path)
    assert result.exit_code == 0, result.output
    lines, metrics = read_outputs(tmp_path)
    assert len(lines) == 3
    assert {line["chosen_model"] for line in lines} == {"long"}
    assert lines[0]["output"] == "B, because it is longer"
    assert lines[0]["lengths"] == {"short": 1, "long": 23, "rambler": 53}
    assert metrics["method"] == "template_longest_answer"
    assert metrics["score"] == {"mean": 0.0, "count": 3}
    assert metrics["model_test_scores"] == {"short": 1.0, "long": 0.0, "rambler": 0.0}
    assert metrics["competitors"] == ["short", "long", "rambler"]
    assert "dev_scores" not in metrics  # no top_k: no dev pass at all


def test_one_batched_call_per_model(moco, tmp_path):
    script_models()
    assert run(tmp_path).exit_code == 0
    assert ScriptedBackend.calls == [("says-short", 3), ("says-long", 3), ("rambles", 3)]


def test_without_an_extractor_the_longest_raw_response_wins(moco, tmp_path):
    script_models()
    result = run(tmp_path, task_type="free")
    assert result.exit_code == 0, result.output
    lines, _ = read_outputs(tmp_path)
    assert {line["chosen_model"] for line in lines} == {"rambler"}


def test_no_response_with_an_answer_falls_back_to_the_longest(moco, tmp_path):
    set_responder("says-short", "no idea")
    set_responder("says-long", "no idea at all")
    set_responder("rambles", "no idea")
    assert run(tmp_path).exit_code == 0
    lines, _ = read_outputs(tmp_path)
    assert lines[0]["chosen_model"] == "long"


def test_ties_go_to_the_first_listed_model(moco, tmp_path):
    set_responder("says-short", "A!")
    set_responder("says-long", "B!")
    set_responder("rambles", "?")
    assert run(tmp_path).exit_code == 0
    lines, _ = read_outputs(tmp_path)
    assert lines[0]["chosen_model"] == "short"


def test_top_k_keeps_only_the_best_dev_models(moco, tmp_path):
    script_models()
    result = run(tmp_path, top_k=1)
    assert result.exit_code == 0, result.output
    lines, metrics = read_outputs(tmp_path)
    assert {line["chosen_model"] for line in lines} == {"short"}
    assert lines[0]["lengths"] == {"short": 1}
    assert metrics["score"]["mean"] == 1.0
    assert metrics["dev_scores"] == {"short": 1.0, "long": 0.0, "rambler": 0.0}
    assert metrics["competitors"] == ["short"]


@pytest.mark.parametrize(("params", "message"), [({"top_k": 0}, "params: top_k:"), ({"topk": 2}, "unknown key")])
def test_bad_params_are_refused_before_any_model_loads(moco, tmp_path, params, message):
    script_models()
    result = run(tmp_path, **params)
    assert result.exit_code == 2
    assert message in result.output
    assert ScriptedBackend.calls == []
