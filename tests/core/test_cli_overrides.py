"""``moco run/validate --set``, the resumed summary line, ``--overwrite`` and ``-v/--quiet``."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.testing import (
    assert_one_line_error,
    scripted_plugins,
    set_responder,
)

cli = CliRunner()


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins():
        set_responder("says-A", "A because")
        set_responder("says-B", "B!")
        yield


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def letters_config(tmp_path, n_test=6, **changes):
    item = lambda i: {"id": f"q{i}", "question": f"question {i}", "choices": {"A": "x", "B": "y"}, "answer": "A"}  # noqa: E731
    data = tmp_path / "letters.json"
    data.write_text(json.dumps({"task_type": "letter", "dev": [item(0)], "test": [item(i) for i in range(n_test)]}))
    config = {
        "method": "majority_vote",
        "params": {"tie_break": "dev"},
        "models": [{"name": n, "path": p, "backend": "scripted"} for n, p in (("a", "says-A"), ("b", "says-B"))],
        "dataset": {"path": str(data)},
        "generation": {"batch_size": 2, "max_new_tokens": 8},
        "output_dir": str(tmp_path / "run"),
        **changes,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_set_overrides_nested_values_and_is_recorded(scripted, tmp_path):
    config = letters_config(tmp_path)
    result = cli.invoke(
        app,
        [
            "run",
            str(config),
            "--set",
            "dataset.limit=2",
            "--set",
            "generation.temperature=0",
            "--set",
            "models.1.system_prompt=be brief",
        ],
    )
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert resolved["dataset"]["limit"] == 2 and resolved["generation"]["temperature"] == 0.0
    assert resolved["models"][1]["system_prompt"] == "be brief"
    assert len((tmp_path / "run" / "predictions.jsonl").read_text().splitlines()) == 2


def test_set_is_validated_like_the_file(scripted, tmp_path):
    config = letters_config(tmp_path)
    assert_one_line_error(
        cli.invoke(app, ["validate", str(config), "--set", "generation.temprature=0"]),
        "generation.temprature: unknown key 'temprature' — did you mean 'temperature'?",
    )
    assert_one_line_error(
        cli.invoke(app, ["run", str(config), "--set", "generation.temperature=-1"]), "generation.temperature"
    )
    assert_one_line_error(
        cli.invoke(app, ["run", str(config), "--set", "temperature"]), "--set 'temperature'", "KEY=VALUE"
    )
    assert_one_line_error(
        cli.invoke(app, ["run", str(config), "--set", "models.5.path=x"]), "models.5 is not an existing"
    )
    ok = cli.invoke(app, ["validate", str(config), "--set", "dataset.limit=3"])
    assert ok.exit_code == 0 and "(1 dev, 3 test)" in ok.output, ok.output


def test_misspelled_top_level_key_is_named_with_a_suggestion(scripted, tmp_path):
    config = letters_config(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["modles"] = data.pop("models")
    config.write_text(yaml.safe_dump(data))
    assert_one_line_error(
        cli.invoke(app, ["validate", str(config)]), "modles: unknown key 'modles' — did you mean 'models'?"
    )


def test_resumed_run_says_so_and_overwrite_starts_afresh(scripted, tmp_path):
    config = letters_config(tmp_path)
    first = cli.invoke(app, ["run", str(config)])
    assert first.exit_code == 0 and "(resumed" not in first.output, first.output
    predictions = tmp_path / "run" / "predictions.jsonl"
    predictions.write_text("".join(predictions.read_text().splitlines(keepends=True)[:4]))
    resumed = cli.invoke(app, ["run", str(config)])
    assert resumed.exit_code == 0 and "(resumed: 4 examples were already done)" in resumed.output, resumed.output
    assert len(predictions.read_text().splitlines()) == 6
    relabelled = cli.invoke(app, ["run", str(config), "--set", "label=vote (dev ties)"])  # a label is not a setting
    assert relabelled.exit_code == 0 and "(resumed: 6 examples" in relabelled.output, relabelled.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["label"] == "vote (dev ties)"
    changed = cli.invoke(app, ["run", str(config), "--set", "params.tie_break=random"])
    assert_one_line_error(changed, "holds a run of a different config")
    fresh = cli.invoke(app, ["run", str(config), "--set", "params.tie_break=random", "--overwrite"])
    assert fresh.exit_code == 0 and "(resumed" not in fresh.output, fresh.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["params"]["tie_break"] == "random"
    assert len(predictions.read_text().splitlines()) == 6


def test_verbosity_options_configure_logging(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    assert cli.invoke(app, ["--quiet", "plugins"]).exit_code == 0
    assert logging.getLogger().level == logging.ERROR
    assert cli.invoke(app, ["-v", "plugins"]).exit_code == 0
    assert logging.getLogger().level == logging.INFO and logging.getLogger("transformers").level == logging.NOTSET
    assert cli.invoke(app, ["plugins"]).exit_code == 0
    assert logging.getLogger().level == logging.WARNING and logging.getLogger("transformers").level == logging.ERROR
    assert_one_line_error(cli.invoke(app, ["-v", "-q", "plugins"]), "at most one of --verbose and --quiet")


def test_version():
    from importlib.metadata import version

    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"moco {version('moco-core')}"


def test_third_party_progress_bars_are_hidden_unless_verbose():
    """transformers' "Loading weights" bar reads this flag; it is off by default and on with -v."""
    from transformers.utils import logging as transformers_logging

    assert cli.invoke(app, ["-v", "plugins"]).exit_code == 0
    assert transformers_logging.is_progress_bar_enabled()
    assert cli.invoke(app, ["plugins"]).exit_code == 0
    assert not transformers_logging.is_progress_bar_enabled()
