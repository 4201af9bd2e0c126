"""The example dataset and task type, end to end through ``moco run`` and ``moco score``.

Copy this pattern for a benchmark: check the packaged file loads, unit-test the extractor on
the phrasings models really produce, then run a scripted pool on the registered key.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import reset as reset_plugins
from moco_core.testing import ScriptedBackendPlugin, registered_plugin, set_responder
from moco_core.types import Example
from moco_plugin_template import arithmetic
from moco_plugin_template import plugin as template_plugin

cli = CliRunner()


@pytest.fixture()
def moco(monkeypatch):
    """Only core, the scripted backend and this plugin (its dataset and task type) are registered."""
    monkeypatch.setenv("MOCO_LOAD_PLUGINS", "")
    reset_plugins()
    try:
        with (
            registered_plugin(ScriptedBackendPlugin(), "scripted"),
            registered_plugin(template_plugin, "template") as registry,
        ):
            yield registry
    finally:
        reset_plugins()


def test_registers_the_dataset_and_its_task_type(moco):
    spec = moco.datasets["template_arithmetic"]
    dataset = spec.load()
    assert (len(dataset.dev), len(dataset.test)) == spec.sizes == (4, 8)
    assert dataset.task_type == "template_integer" and dataset.test[0].answer == "42"
    assert moco.scorers["template_integer"].extract is arithmetic.extract


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("12 + 30 = 42. Answer: 42", "42"),
        ("First I thought 41, but the answer is 42.", "42"),
        ("Answer: -41", "-41"),
        ("It is 56", "56"),
        ("no idea", None),
    ],
)
def test_extractor(output, expected):
    example = Example(index=0, id="x", question="q", answer="42", task_type="template_integer")
    assert arithmetic.extract(example, output) == expected


def adds_and_subtracts(request) -> str:
    """A scripted model that gets sums and differences right and multiplies by adding."""
    a, word, b = re.search(r"What is (\d+) (\w+) (\d+)", request.prompt).groups()
    return f"Answer: {int(a) - int(b) if word == 'minus' else int(a) + int(b)}"


def test_run_on_the_registered_key(moco, tmp_path):
    set_responder("calculator", adds_and_subtracts)
    config = {
        "method": "majority_vote" if "majority_vote" in moco.methods else "template_longest_answer",
        "models": [{"name": "calc", "path": "calculator", "backend": "scripted"}],
        "dataset": {"name": "template_arithmetic"},
        "output_dir": str(tmp_path / "run"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = cli.invoke(app, ["run", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [line["score"] for line in lines] == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0]  # "times" items fail
    assert lines[1]["extracted"] == "13" and lines[1]["gold"] == "42"
    assert lines[0]["prompt"].endswith("finish with 'Answer: <integer>'.")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "template_arithmetic" and metrics["domain"] == "math"
    assert metrics["score"] == {"mean": 0.75, "count": 8}


def test_score_outputs_made_elsewhere(moco, tmp_path):
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(
        "".join(json.dumps({"index": i, "output": f"Answer: {a}"}) + "\n" for i, a in enumerate([42, 1]))
    )
    result = cli.invoke(app, ["score", "--dataset", "template_arithmetic", str(outputs)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "template_arithmetic test: mean 0.5000 count 2"
