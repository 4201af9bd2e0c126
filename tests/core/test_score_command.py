from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.plugins import get_registry
from moco_core.testing import ScriptedTaskTypesPlugin, registered_plugin

cli = CliRunner()


@pytest.fixture(autouse=True)
def needs_evals():
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")


@pytest.fixture()
def data_file(tmp_path):
    items = [
        {"id": "a", "question": "q0", "choices": {"A": "x", "B": "y"}, "answer": "A"},
        {"id": "b", "question": "q1", "choices": {"A": "x", "B": "y"}, "answer": "B"},
        {"id": "b", "question": "q2", "choices": {"A": "x", "B": "y"}, "answer": "B"},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"name": "tiny", "task_type": "multiple_choice", "dev": [], "test": items}))
    return path


def write_lines(tmp_path, lines):
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_scores_by_id_and_index_and_writes_per_item(tmp_path, data_file):
    predictions = write_lines(
        tmp_path,
        [
            {"id": "a", "output": "The answer is (A)."},
            {"index": 1, "output": "B"},
            {"index": 2, "id": "b", "output": "The answer is (A)."},
        ],
    )
    out = tmp_path / "scores.jsonl"
    result = cli.invoke(app, ["score", "--data", str(data_file), str(predictions), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "tiny test: mean 0.6667 count 3"
    scores = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(s["index"], s["score"]) for s in scores] == [(0, 1.0), (1, 1.0), (2, 0.0)]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ({"id": "zzz", "output": "A"}, "line 2: no item with id 'zzz'"),
        ({"id": "b", "output": "A"}, "line 2: id 'b' is not unique in the test split; give 'index'"),
        ({"index": 9, "output": "A"}, "line 2: index 9 is not in the test split"),
        ({"index": 0}, "line 2: missing 'output'"),
        ({"output": "A"}, "line 2: needs 'index' or 'id'"),
        ({"index": 1, "id": "a", "output": "A"}, "line 2: id 'a' does not match item 1"),
    ],
)
def test_bad_lines_name_their_line_number(tmp_path, data_file, line, fragment):
    predictions = write_lines(tmp_path, [{"index": 0, "output": "A"}, line])
    result = cli.invoke(app, ["score", "--data", str(data_file), str(predictions)])
    assert result.exit_code == 2
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_malformed_line_and_argument_errors(tmp_path, data_file):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"index": 0, "output": "A"}\n{broken\n')
    result = cli.invoke(app, ["score", "--data", str(data_file), str(predictions)])
    assert result.exit_code == 2 and "line 2: malformed JSON" in result.output
    result = cli.invoke(app, ["score", str(predictions)])
    assert result.exit_code == 2 and "exactly one of --dataset or --data" in result.output


def test_registered_dataset_by_key(tmp_path, bench_dir, monkeypatch):
    monkeypatch.setenv("MOCO_DATA_DIR", str(bench_dir))
    gold = json.loads((bench_dir / "gsm8k.json").read_text())["test"][:3]
    predictions = write_lines(
        tmp_path, [{"index": i, "output": f"so \\boxed{{{item['output']}}}"} for i, item in enumerate(gold)]
    )
    result = cli.invoke(app, ["score", "--dataset", "gsm8k", str(predictions)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "gsm8k test: mean 1.0000 count 3"


def test_second_metrics_are_printed_before_the_mean_and_written_per_item(tmp_path):
    items = [{"id": str(i), "input": f"question {i}", "output": "42"} for i in range(3)]
    data = tmp_path / "arith.json"
    data.write_text(json.dumps({"name": "arith", "task_type": "exact_match", "dev": [], "test": items}))
    outputs = ["The answer is \\boxed{42}.", "The answer is \\boxed{41}. Oops, it is 42", "I got 42 but \\boxed{41}"]
    predictions = write_lines(tmp_path, [{"index": i, "output": o} for i, o in enumerate(outputs)])
    out = tmp_path / "scores.jsonl"
    result = cli.invoke(app, ["score", "--data", str(data), str(predictions), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [
        "arith test: flexible_accuracy 0.6667",
        "arith test: mean 0.3333 count 3",
    ]
    scores = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(s["score"], s["extra_scores"]["flexible_accuracy"]) for s in scores] == [
        (1.0, 1.0),
        (0.0, 1.0),
        (0.0, 0.0),
    ]


def test_a_task_type_without_second_metrics_prints_only_the_mean(tmp_path):
    data = tmp_path / "free.json"
    data.write_text(
        json.dumps({"name": "free", "task_type": "free", "dev": [], "test": [{"input": "q", "output": "x"}]})
    )
    predictions = write_lines(tmp_path, [{"index": 0, "output": "x"}])
    with registered_plugin(ScriptedTaskTypesPlugin(), "tt"):
        result = cli.invoke(app, ["score", "--data", str(data), str(predictions)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == ["free test: mean 1.0000 count 1"]
