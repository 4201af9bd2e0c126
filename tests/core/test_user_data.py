"""User data files in every format, the ``fields`` mapping, the dataset config and its errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.config import parse_config
from moco_core.data import load_registered, load_user_data
from moco_core.errors import MocoError
from moco_core.registry import DatasetSpec
from moco_core.testing import ScriptedBackendPlugin, registered_plugin

MC_ITEM = {"id": 1, "question": "2 + 2?", "choices": {"A": "3", "B": "4"}, "answer": "B"}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def one_line(error: pytest.ExceptionInfo[MocoError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ---- formats ---------------------------------------------------------------------------------


def test_benchmark_json_with_fields_mapping(tmp_path: Path) -> None:
    item = {"uid": "q1", "prompt": "2 + 2?", "options": {"A": "3", "B": "4"}, "label": "B", "topic": "sums"}
    path = write_json(tmp_path / "mine.json", {"name": "mine", "task_type": "multiple_choice", "test": [item]})
    fields = {"id": "uid", "question": "prompt", "choices": "options", "answer": "label"}
    dataset = load_user_data(path, fields=fields)
    example = dataset.test[0]
    assert (dataset.name, dataset.task_type, dataset.dev) == ("mine", "multiple_choice", [])
    assert (example.id, example.question, example.choices, example.answer) == (
        "q1",
        "2 + 2?",
        {"A": "3", "B": "4"},
        "B",
    )
    assert example.extra == {"topic": "sums"}


def test_plain_json_list_is_all_test_and_needs_a_task_type(tmp_path: Path) -> None:
    path = write_json(tmp_path / "list.json", [{"input": "Capital of France?", "output": "Paris"}] * 3)
    dataset = load_user_data(path, "exact_match")
    assert (len(dataset.dev), len(dataset.test), dataset.source) == (0, 3, str(path))
    assert [e.id for e in dataset.test] == ["0", "1", "2"]
    with pytest.raises(MocoError) as error:
        load_user_data(path)
    assert one_line(error) == f"{path}: dataset.task_type is required: only benchmark-format JSON declares its own"


def test_jsonl_with_list_choices_and_index_answer(tmp_path: Path) -> None:
    rows = [{"q": "2 + 2?", "opts": ["3", "4", "5"], "gold": 1}, {"q": "1 + 1?", "opts": ["2", "3"], "gold": "A"}]
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    path.write_text(path.read_text() + "\n\n", encoding="utf-8")
    dataset = load_user_data(path, "multiple_choice", {"question": "q", "choices": "opts", "answer": "gold"})
    assert [(e.choices, e.answer) for e in dataset.test] == [
        ({"A": "3", "B": "4", "C": "5"}, "B"),
        ({"A": "2", "B": "3"}, "A"),
    ]


def test_csv_choices_as_json_object_or_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "items.csv",
        [
            {"question": "2 + 2?", "choices": json.dumps({"A": "3", "B": "4"}), "answer": "B", "note": "x"},
            {
                "question": "Eval?",
                "choices": json.dumps({"A": "__import__('os')", "B": "no"}),
                "answer": "A",
                "note": "",
            },
        ],
    )
    dataset = load_user_data(path, "multiple_choice")
    assert dataset.test[0].choices == {"A": "3", "B": "4"} and dataset.test[0].extra == {"note": "x"}
    assert dataset.test[1].choices == {"A": "__import__('os')", "B": "no"}
    columns = write_csv(tmp_path / "columns.csv", [{"stem": "Q?", "opa": "x", "opb": "y", "opc": "z", "key": "C"}])
    example = load_user_data(columns, "multiple_choice", {"question": "stem", "choices": ["opa", "opb", "opc"],
                                                          "answer": "key"}).test[0]  # fmt: skip
    assert (example.choices, example.answer, example.extra) == ({"A": "x", "B": "y", "C": "z"}, "C", {})


def test_csv_with_utf8_bom_and_free_form_items(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("\ufeffinput,output\nWhat is 6 x 7?,42\n", encoding="utf-8")
    example = load_user_data(path, "exact_match").test[0]
    assert (example.question, example.answer) == ("What is 6 x 7?", "42")


def test_save_to_disk_dataset_dict_and_single_dataset(tmp_path: Path) -> None:
    import datasets

    rows = [{"problem": f"p{i}", "solution": str(i)} for i in range(4)]
    splits = {"train": rows, "validation": rows[:1], "test": rows[1:]}
    folder = tmp_path / "saved"
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(folder))
    dataset = load_user_data(folder, "exact_match", {"question": "problem", "answer": "solution"})
    assert (dataset.name, len(dataset.dev), len(dataset.test)) == ("saved", 1, 3)
    assert [e.answer for e in dataset.test] == ["1", "2", "3"]

    single = tmp_path / "single"
    datasets.Dataset.from_list(rows).save_to_disk(str(single))
    dataset = load_user_data(single, "exact_match", {"question": "problem", "answer": "solution"})
    assert (len(dataset.dev), len(dataset.test)) == (0, 4)

    lone = tmp_path / "lone"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(lone))
    assert len(load_user_data(lone, "exact_match", {"question": "problem", "answer": "solution"}).test) == 4

    no_test = tmp_path / "no_test"
    datasets.DatasetDict({k: datasets.Dataset.from_list(rows) for k in ("train", "validation")}).save_to_disk(
        str(no_test)
    )
    with pytest.raises(MocoError) as error:
        load_user_data(no_test, "exact_match")
    assert one_line(error) == f"{no_test}: no 'test' split (found train, validation)"


def test_goldless_task_types_need_no_answer(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"input": "Tell me a story", "category": "creative"}])
    example = load_user_data(path, "reward_model").test[0]
    assert (example.answer, example.extra) == (None, {"category": "creative"})


# ---- errors -----------------------------------------------------------------------------------


def test_missing_mapped_field_names_file_split_index_and_field(tmp_path: Path) -> None:
    rows = [{"q": "a?", "a": "1"}, {"q": "b?", "a": "2"}, {"q": "c?"}]
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    with pytest.raises(MocoError) as error:
        load_user_data(path, "exact_match", {"question": "q", "answer": "a"})
    assert one_line(error) == f"{path}: test[2]: missing field 'a' (mapped to 'answer')"


@pytest.mark.parametrize(
    ("name", "content", "task_type", "expected"),
    [
        ("bad.json", "{not json", None, "malformed JSON"),
        ("nolist.json", json.dumps({"task_type": "exact_match", "dev": []}), None, "missing list 'test'"),
        ("scalar.json", "3", "exact_match", "or a list of items"),
        ("notype.json", json.dumps({"test": []}), None, "missing field 'task_type'"),
        ("noq.json", json.dumps({"task_type": "exact_match", "test": [{"output": "1"}]}), None,
         "test[0]: missing field 'question' (or 'input')"),
        ("noanswer.json", json.dumps({"task_type": "exact_match", "dev": [{"input": "x"}], "test": []}), None,
         "dev[0]: missing field 'answer' (or 'output')"),
        ("nochoices.json", json.dumps({"task_type": "multiple_choice", "test": [{"question": "x", "answer": "A"}]}),
         None, "test[0]: missing field 'choices'"),
        ("item.json", json.dumps({"task_type": "exact_match", "test": ["just text"]}), None,
         "test[0]: item must be an object"),
        ("lines.jsonl", '{"input": "a", "output": "1"}\n\n{"input": oops}\n', "exact_match",
         "test[1] (line 3): malformed JSON"),
        ("cells.csv", "input,output\na,1\nb,2,extra\n", "exact_match",
         "test[1] (line 3): more cells than header columns"),
        ("choices.csv", "question,choices,answer\nq,not json,A\n", "multiple_choice",
         "test[0]: field 'choices' is not a JSON object of key -> text"),
        ("items.txt", "hello", "exact_match", "unsupported data file"),
    ],
)  # fmt: skip
def test_malformed_files_are_one_line_errors(
    tmp_path: Path, name: str, content: str, task_type: str | None, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MocoError) as error:
        load_user_data(path, task_type)
    message = one_line(error)
    assert message.startswith(f"{path}: ") and expected in message


def test_missing_file_and_unreadable_folder(tmp_path: Path) -> None:
    with pytest.raises(MocoError, match=r"nope\.csv: data file not found"):
        load_user_data(tmp_path / "nope.csv", "exact_match")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(MocoError) as error:
        load_user_data(folder, "exact_match")
    assert one_line(error).startswith(f"{folder}: not a dataset saved with save_to_disk")


# ---- config ------------------------------------------------------------------------------------

BASE = {"method": "majority_vote", "models": [{"name": "a", "path": "org/model"}]}


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ({"path": "items.jsonl"}, "dataset.task_type: Value error, required for a .jsonl user file"),
        ({"path": "items.csv"}, "dataset.task_type: Value error, required for a .csv user file"),
        ({"path": "saved_folder"}, "dataset.task_type: Value error, required for a folder user file"),
        ({"name": "gsm8k", "task_type": "exact_match"}, "dataset.task_type: Value error, only for a user file"),
        ({"name": "gsm8k", "fields": {"question": "q"}}, "dataset.fields: Value error, only for a user file"),
        ({"path": "x.json", "fields": {"answer": ["a", "b"]}}, "dataset.fields: Value error, answer: a list"),
        ({"path": "x.json", "source": "hub"}, "dataset.source: Value error, 'hub' applies to a registered dataset"),
        ({"path": "x.json", "data_dir": "d"}, "dataset.data_dir: Value error, applies to a registered dataset"),
        ({"name": "gsm8k", "source": "hub", "data_dir": "d"}, "dataset.data_dir: Value error, not used with"),
        ({"name": "gsm8k", "source": "file", "split_seed": 2}, "dataset.split_seed: Value error, samples the public"),
        ({"path": "x.json", "split_seed": 2}, "dataset.split_seed: Value error, samples the public"),
        ({"name": "gsm8k", "source": "web"}, "dataset.source: Input should be 'auto', 'file' or 'hub'"),
        ({"name": "gsm8k", "path": "x.csv"}, "dataset: Value error, give exactly one of 'name' or 'path'"),
        ({"name": "gsm8k", "colour": 1}, "dataset.colour: unknown key"),
    ],
)
def test_dataset_config_errors_name_the_field(dataset: dict[str, Any], expected: str) -> None:
    with pytest.raises(MocoError) as error:
        parse_config({**BASE, "dataset": dataset}, "cfg.yaml")
    assert one_line(error).startswith(f"cfg.yaml: {expected}")


def test_dataset_config_accepts_and_round_trips() -> None:
    from moco_core.config import dump_config

    for dataset in (
        {"name": "gsm8k", "source": "hub", "split_seed": 3},
        {"name": "gsm8k", "source": "file", "data_dir": "/data"},
        {"path": "x.csv", "task_type": "exact_match", "fields": {"question": "q", "choices": ["a", "b"]}},
        {"path": "x.json"},
    ):
        config = parse_config({**BASE, "dataset": dataset})
        assert parse_config(yaml.safe_load(dump_config(config))).dataset == config.dataset
    assert parse_config({**BASE, "dataset": {"name": "gsm8k"}}).dataset.source == "auto"


# ---- registered datasets: which source -------------------------------------------------------


@pytest.fixture()
def fake_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DatasetSpec:
    """A spec whose loaders live in a throw-away module and say which one ran."""
    (tmp_path / "fake_loaders_for_user_data.py").write_text(
        "from moco_core.types import Dataset\n"
        "def from_file(spec, data_dir):\n"
        "    return Dataset(spec.key, spec.task_type, [], [], source=f'file:{data_dir}')\n"
        "def from_hub(spec, seed):\n"
        "    return Dataset(spec.key, spec.task_type, [], [], source=f'hub seed={seed}')\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("MOCO_DATA_DIR", raising=False)
    return DatasetSpec(
        "toy",
        "exact_match",
        "fake_loaders_for_user_data:from_file",
        hub="org/toy",
        hub_loader="fake_loaders_for_user_data:from_hub",
    )


def test_auto_takes_the_file_when_the_folder_has_it(fake_spec: DatasetSpec, tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    assert load_registered(fake_spec, "auto", str(data), seed=4).source == "hub seed=4"
    (data / "toy.json").write_text("{}", encoding="utf-8")
    assert load_registered(fake_spec, "auto", str(data)).source == f"file:{data}"
    monkeypatch.setenv("MOCO_DATA_DIR", str(data))
    assert load_registered(fake_spec, "auto").source == f"file:{data}"
    assert load_registered(fake_spec, "hub", seed=9).source == "hub seed=9"
    assert load_registered(fake_spec, "file").source == f"file:{data}"


def test_auto_without_hub_loader_reads_the_file(fake_spec: DatasetSpec) -> None:
    fake_spec.hub_loader = None
    assert load_registered(fake_spec, "auto").source == "file:None"
    with pytest.raises(MocoError, match=r"^dataset.source: toy has no public-source mapping"):
        load_registered(fake_spec, "hub")


# ---- end to end through `moco validate` --------------------------------------------------------


def test_validate_reads_a_jsonl_user_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "quiz.jsonl", [{"q": "2 + 2?", "opts": ["3", "4"], "gold": "B"}] * 2)
    config = {
        **BASE,
        "models": [{"name": "a", "path": "p", "backend": "scripted"}],
        "dataset": {
            "path": str(path),
            "task_type": "multiple_choice",
            "fields": {"question": "q", "choices": "opts", "answer": "gold"},
        },
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with registered_plugin(ScriptedBackendPlugin(), "scripted"):
        result = CliRunner().invoke(app, ["validate", str(config_path)])
    if "no installed plugin scores" in result.output:
        pytest.skip("moco-evals is not installed")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: majority_vote on quiz (0 dev, 2 test)")


def test_validate_names_the_bad_item(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "quiz.jsonl", [{"q": "2 + 2?"}])
    config = {**BASE, "dataset": {"path": str(path), "task_type": "exact_match", "fields": {"question": "q"}}}
    config["models"] = [{"name": "a", "path": "p", "backend": "scripted"}]
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with registered_plugin(ScriptedBackendPlugin(), "scripted"):
        result = CliRunner().invoke(app, ["validate", str(config_path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: test[0]: missing field 'answer' (or 'output')"
