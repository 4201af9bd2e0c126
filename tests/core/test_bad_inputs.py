"""Every bad input: exit code 2 and one line naming the file, field or line at fault."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.data import load_user_data
from moco_core.plugins import get_registry
from moco_core.testing import (
    assert_one_line_error,
    scripted_plugins,
    set_responder,
)

cli = CliRunner()
ITEM = {"id": "q0", "question": "q?", "choices": {"A": "x", "B": "y"}, "answer": "A"}


@pytest.fixture()
def needs_evals():
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins():
        set_responder("always-A", "A")
        yield


def data_file(tmp_path, items=None, task_type="multiple_choice", name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"name": "d", "task_type": task_type, "dev": [ITEM], "test": items or [ITEM]}))
    return path


def config_file(tmp_path, models, data, **overrides):
    config = {"method": "majority_vote", "models": models, "dataset": {"path": str(data)}, **overrides}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def scripted_config(tmp_path, **overrides):
    models = [{"name": "a", "path": "always-A", "backend": "scripted"}]
    return config_file(tmp_path, models, data_file(tmp_path, task_type="letter"), **overrides)


def tiny_copy(tmp_path, tiny_pool_paths):
    folder = tmp_path / "model"
    shutil.copytree(tiny_pool_paths[0], folder)
    return folder, next(folder.glob("*.safetensors"))


# --- config files ---------------------------------------------------------------------------


def test_non_utf8_byte_in_the_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"method: majority_vote\nmodels:\n  - name: caf\xe9\n")
    assert_one_line_error(cli.invoke(app, ["validate", str(path)]), str(path), "not UTF-8", "line 3")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("method: majority_vote\nmethod: single_model\n", "key 'method' is given twice (line 2)"),
        ("method: m\ngeneration:\n  seed: 1\n  top_p: 0.5\n  seed: 2\n", "key 'seed' is given twice (line 5)"),
    ],
)
def test_a_duplicated_yaml_key_is_refused_naming_it_and_its_line(tmp_path, text, fragment):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert_one_line_error(cli.invoke(app, ["validate", str(path)]), str(path), fragment)


def test_a_duplicated_json_key_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"method": "majority_vote", "method": "single_model"}')
    assert_one_line_error(cli.invoke(app, ["validate", str(path)]), "key 'method' is given twice")


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    from moco_core.config import read_config_file

    path = tmp_path / "config.yaml"
    path.write_text("base: &base {seed: 1, top_p: 0.5}\ngeneration:\n  <<: *base\n  seed: 2\n")
    assert read_config_file(path)["generation"] == {"seed": 2, "top_p": 0.5}


# --- model folders --------------------------------------------------------------------------


def _random(file):
    file.write_bytes(os.urandom(file.stat().st_size))


def _half(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _last_tensor_cut(file):
    file.write_bytes(file.read_bytes()[:-1])


def _huge_header_length(file):
    file.write_bytes((10**12).to_bytes(8, "little") + file.read_bytes()[8:])


def _header_not_json(file):
    data = bytearray(file.read_bytes())
    data[8:12] = b"\xff\xfe\x00!"
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_random, _half, _last_tensor_cut, _huge_header_length, _header_not_json])
def test_a_random_or_truncated_safetensors_file_fails_validate(tmp_path, tiny_pool_paths, damage):
    folder, weights = tiny_copy(tmp_path, tiny_pool_paths)
    damage(weights)
    config = config_file(tmp_path, [{"name": "m", "path": str(folder)}], data_file(tmp_path))
    assert_one_line_error(cli.invoke(app, ["validate", str(config)]), "models[0].path", str(weights), "safetensors")


def test_a_shard_index_naming_a_missing_shard_fails_validate(tmp_path, tiny_pool_paths):
    folder, _ = tiny_copy(tmp_path, tiny_pool_paths)
    index = {"weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = config_file(tmp_path, [{"name": "m", "path": str(folder)}], data_file(tmp_path))
    assert_one_line_error(cli.invoke(app, ["validate", str(config)]), "model-00002-of-00002.safetensors", "missing")


def test_intact_weights_and_a_context_within_the_limit_pass(tmp_path, tiny_pool_paths, needs_evals):
    folder, _ = tiny_copy(tmp_path, tiny_pool_paths)
    limit = json.loads((folder / "config.json").read_text())["max_position_embeddings"]
    config = config_file(
        tmp_path, [{"name": "m", "path": str(folder)}], data_file(tmp_path), generation={"max_new_tokens": limit}
    )
    result = cli.invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output


def test_max_new_tokens_beyond_the_models_context_is_refused_naming_the_limit(tmp_path, tiny_pool_paths):
    limit = json.loads((tiny_pool_paths[0] / "config.json").read_text())["max_position_embeddings"]
    models = [{"name": "m", "path": str(tiny_pool_paths[0])}]
    config = config_file(tmp_path, models, data_file(tmp_path), generation={"max_new_tokens": limit + 1})
    assert_one_line_error(
        cli.invoke(app, ["run", str(config)]),
        "generation.max_new_tokens",
        f"{limit} positions",
        f"use at most {limit}",
    )


# --- output_dir -----------------------------------------------------------------------------


def test_output_dir_that_is_an_existing_file(scripted, tmp_path):
    existing = tmp_path / "taken"
    existing.write_text("mine")
    result = cli.invoke(app, ["run", str(scripted_config(tmp_path)), "--output-dir", str(existing)])
    assert_one_line_error(result, "output_dir", str(existing), "existing file")
    assert existing.read_text() == "mine"
    inside = existing / "run"
    assert_one_line_error(
        cli.invoke(app, ["run", str(scripted_config(tmp_path)), "--output-dir", str(inside)]), "output_dir"
    )


def test_output_dir_that_cannot_be_written(scripted, tmp_path):
    if os.geteuid() == 0:  # root writes through permissions: use a filesystem that refuses everyone
        if not os.path.ismount("/sys"):
            pytest.skip("running as root without a read-only /sys")
        target = "/sys/moco-test-run"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked)
    result = cli.invoke(app, ["run", str(scripted_config(tmp_path)), "--output-dir", target])
    assert_one_line_error(result, "output_dir", target)


# --- data -----------------------------------------------------------------------------------


def test_a_multiple_choice_answer_that_is_no_option_is_refused_at_load(tmp_path, tiny_pool_paths):
    bad = {"id": "q7", "question": "q?", "choices": {"A": "x", "B": "y"}, "answer": "C"}
    data = data_file(tmp_path, items=[ITEM, bad])
    config = config_file(tmp_path, [{"name": "m", "path": str(tiny_pool_paths[0])}], data)
    assert_one_line_error(cli.invoke(app, ["validate", str(config)]), str(data), "test[1]", "'q7'", "answer 'C'")
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text(json.dumps({**bad, "choices": ["x", "y"], "answer": 5}) + "\n")
    with pytest.raises(Exception, match=r"test\[0\] \(id 'q7'\): answer 5 is not one of its options \(A, B\)"):
        load_user_data(jsonl, "multiple_choice")


def test_a_gold_given_as_option_text_or_lower_case_key_is_still_an_option(tmp_path):
    items = [
        {"id": "t", "question": "q", "choices": {"A": "Paris", "B": "Rome"}, "answer": "rome"},
        {"id": "k", "question": "q", "choices": {"A": "Paris", "B": "Rome"}, "answer": "b"},
        {"id": "n", "question": "q", "choices": {"1": "one", "2": "two"}, "answer": 2},
    ]
    assert len(load_user_data(data_file(tmp_path, items=items)).test) == 3


def test_every_shared_benchmark_file_still_loads(bench_dir):
    from moco_core.data import load_benchmark_file

    for path in sorted(bench_dir.glob("*.json")):
        assert load_benchmark_file(path).test, path


# --- moco score -----------------------------------------------------------------------------


def score(tmp_path, lines: bytes, *extra):
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_bytes(lines)
    data = data_file(tmp_path, items=[ITEM, {**ITEM, "id": "q1"}])
    return predictions, cli.invoke(app, ["score", "--data", str(data), str(predictions), *extra])


def test_score_non_utf8_predictions(tmp_path, needs_evals):
    predictions, result = score(tmp_path, b'{"index": 0, "output": "A"}\n{"index": 1, "output": "\xff"}\n')
    assert_one_line_error(result, str(predictions), "line 2", "not UTF-8")


def test_score_refuses_one_item_given_twice(tmp_path, needs_evals):
    lines = b'{"index": 0, "output": "A"}\n{"index": 1, "output": "B"}\n{"id": "q0", "output": "A"}\n'
    predictions, result = score(tmp_path, lines)
    assert_one_line_error(result, str(predictions), "line 3", "item 0", "already given on line 1")


def test_score_refuses_a_boolean_index(tmp_path, needs_evals):
    predictions, result = score(tmp_path, b'{"index": true, "output": "A"}\n')
    assert_one_line_error(result, str(predictions), "line 1", "index True", "boolean")


@pytest.mark.parametrize("where", ["directory", "missing folder"])
def test_score_refuses_an_unwritable_output_before_scoring(tmp_path, needs_evals, where):
    output = tmp_path if where == "directory" else tmp_path / "nowhere" / "scores.jsonl"
    _, result = score(tmp_path, b'{"index": 0, "output": "A"}\n', "--output", str(output))
    assert_one_line_error(result, "--output")


# --- moco compare ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{}", "no 'method'"),
        (b"[]", "expected a JSON object, found list"),
        (json.dumps({"method": "m", "dataset": "d", "score": {"count": 3}}).encode(), "score.mean"),
        (json.dumps({"method": "m", "dataset": "d", "score": {"mean": "0.5"}}).encode(), "score.mean"),
        (b'{"method": "caf\xe9"}', "not UTF-8"),
        (b'{"method": "m", "dataset": ', "malformed JSON"),
    ],
)
def test_compare_refuses_a_metrics_file_without_what_it_needs(tmp_path, content, fragment):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_bytes(content)
    assert_one_line_error(cli.invoke(app, ["compare", str(run_dir)]), str(run_dir / "metrics.json"), fragment)
