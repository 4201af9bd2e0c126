from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core import runner
from moco_core.cli import app
from moco_core.testing import (
    ScriptedBackend,
    scripted_plugins,
    set_responder,
    write_letters_dataset,
)

cli = CliRunner()


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins():
        yield


def write_data(tmp_path, n_test=6, n_dev=4):
    return write_letters_dataset(tmp_path, n_test, n_dev)


def write_config(tmp_path, data_path, **changes):
    config = {
        "method": "majority_vote",
        "models": [
            {"name": "right", "path": "always-A", "backend": "scripted"},
            {"name": "wrong", "path": "always-B", "backend": "scripted"},
            {"name": "right2", "path": "always-A2", "backend": "scripted"},
        ],
        "dataset": {"path": str(data_path)},
        "generation": {"batch_size": 2, "max_new_tokens": 8},
        "output_dir": str(tmp_path / "run"),
        **changes,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def responders():
    set_responder("always-A", "A because")
    set_responder("always-A2", "A.")
    set_responder("always-B", "B!")


def read_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]


def test_run_writes_predictions_metrics_and_config(scripted, tmp_path):
    responders()
    config = write_config(tmp_path, write_data(tmp_path))
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    lines = read_lines(run_dir)
    assert [line["index"] for line in lines] == list(range(6))
    assert all(line["output"] == "A because" and line["score"] == 1.0 for line in lines)
    assert lines[0]["votes"] == {"A": 2, "B": 1}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["score"] == {"mean": 1.0, "count": 6}
    assert metrics["generations"] == {"made": 3 * 4 + 3 * 6, "cached": 0}
    assert metrics["dev_scores"] == {"right": 1.0, "wrong": 0.0, "right2": 1.0}
    assert metrics["dev_best_single"] == {"model": "right", "dev_score": 1.0, "test_score": 1.0}
    assert metrics["model_test_scores"]["wrong"] == 0.0
    assert "moco-core" in metrics["versions"] and metrics["seed"] == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["method"] == "majority_vote"
    assert "generations made 30, cached 0" in result.output


def test_same_config_in_new_dir_makes_no_generations(scripted, tmp_path):
    responders()
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    ScriptedBackend.calls.clear()
    result = cli.invoke(app, ["run", str(config), "--output-dir", str(tmp_path / "second")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert metrics["generations"] == {"made": 0, "cached": 30}
    assert ScriptedBackend.calls == []
    result = cli.invoke(app, ["run", str(config), "--output-dir", str(tmp_path / "third"), "--no-cache"])
    assert json.loads((tmp_path / "third" / "metrics.json").read_text())["generations"]["made"] == 30


def test_interrupted_run_resumes_without_loss_or_duplicates(scripted, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "MIN_CHUNK", 1)
    config = write_config(tmp_path, write_data(tmp_path, n_test=10), generation={"batch_size": 1})
    responders()
    calls = {"n": 0}

    def flaky(request):
        calls["n"] += 1
        if request.prompt == "test question 6":
            raise KeyboardInterrupt
        return "A!"

    set_responder("always-A", flaky)
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 130
    assert "resume" in result.output
    written = read_lines(tmp_path / "run")
    assert [line["index"] for line in written] == [0, 1, 2, 3]
    with (tmp_path / "run" / "predictions.jsonl").open("a") as handle:
        handle.write('{"index": 4, "id": "q4", "outp')  # a line cut short by kill -9
    responders()
    ScriptedBackend.calls.clear()
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    lines = read_lines(tmp_path / "run")
    assert sorted(line["index"] for line in lines) == list(range(10))
    fresh_prompts = sum(n for _, n in ScriptedBackend.calls)
    assert fresh_prompts < 3 * 14  # dev and finished test items came from the cache


def test_a_resumed_run_counts_the_compute_and_wall_time_of_every_attempt(scripted, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "MIN_CHUNK", 1)
    config = write_config(tmp_path, write_data(tmp_path, n_test=8), generation={"batch_size": 1})
    responders()

    def interrupted(request):
        if request.prompt == "test question 4":  # the first item of the second chunk of 4
            raise KeyboardInterrupt
        return "A because"

    set_responder("always-A", interrupted)
    assert cli.invoke(app, ["run", str(config)]).exit_code == 130
    first = json.loads((tmp_path / "run" / "work" / "attempts.json").read_text())
    assert first["attempts"] == 1 and first["wall_time_s"] > 0
    responders()
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())

    straight = cli.invoke(app, ["run", str(config), "--no-cache", "--output-dir", str(tmp_path / "straight")])
    assert straight.exit_code == 0, straight.output
    uninterrupted = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    assert resumed["attempts"] == 2 and uninterrupted["attempts"] == 1
    assert resumed["compute"]["generations"] == uninterrupted["compute"]["generations"]
    assert sum(resumed["compute"]["cached_generations"].values()) == 0, "the dev work replayed on resume is not new"
    assert resumed["generations"] == uninterrupted["generations"]
    assert resumed["wall_time_s"] >= first["wall_time_s"]


def test_other_config_in_same_dir_is_refused(scripted, tmp_path):
    responders()
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    changed = write_config(tmp_path, write_data(tmp_path), params={"tie_break": "random"})
    result = cli.invoke(app, ["run", str(changed)])
    assert result.exit_code == 2
    assert "different config" in result.output


def test_compare_tables(scripted, tmp_path):
    responders()
    config = write_config(tmp_path, write_data(tmp_path))
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    single = write_config(tmp_path, write_data(tmp_path), method="single_model", output_dir=str(tmp_path / "single"))
    assert cli.invoke(app, ["run", str(single)]).exit_code == 0
    result = cli.invoke(app, ["compare", str(tmp_path / "run"), str(tmp_path / "single")])
    assert result.exit_code == 0, result.output
    assert "| method | other: letters |" in result.output
    assert "| best single model | 1.0000 [1.0000, 1.0000] n=6 |" in result.output
    assert "| majority_vote | 1.0000 [1.0000, 1.0000] n=6 |" in result.output
    assert "| majority_vote | +0.0000 (p=1, mcnemar, n=6) |" in result.output
    csv_result = cli.invoke(app, ["compare", "--csv", str(tmp_path / "run")])
    assert csv_result.output.splitlines()[0].startswith("row,method,dataset,domain,mean,n,")


def test_single_model_reports_dev_best_and_every_model(scripted, tmp_path):
    responders()
    config = write_config(tmp_path, write_data(tmp_path), method="single_model")
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    lines = read_lines(tmp_path / "run")
    assert lines[0]["model"] == "right"
    assert lines[0]["outputs"] == {"right": "A because", "wrong": "B!", "right2": "A."}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model_test_scores"] == {"right": 1.0, "wrong": 0.0, "right2": 1.0}


def test_grouped_score_counts_a_group_only_when_all_items_are_right():
    lines = [
        {"id": "a", "group": "g1", "score": 1.0},
        {"id": "b", "group": "g1", "score": 0.0},
        {"id": "c", "group": "g2", "score": 1.0},
        {"id": "d", "group": "g2", "score": 1.0},
    ]
    assert runner.summarize_scores(lines, grouped=True) == {
        "mean": 0.5,
        "count": 2,
        "item_mean": 0.75,
        "item_count": 4,
    }
    assert runner.summarize_scores(lines, grouped=False) == {"mean": 0.75, "count": 4}


def test_reward_scores_also_get_a_min_max_normalised_mean():
    lines = [{"id": str(i), "score": value} for i, value in enumerate([-2.0, 0.0, 2.0, 4.0])]
    summary = runner.summarize_scores(lines, grouped=False, normalize=True)
    assert summary["mean"] == 1.0
    assert summary["normalized_mean"] == pytest.approx((0 + 1 / 3 + 2 / 3 + 1) / 4)


def test_changed_data_makes_a_resume_refuse_stale_scores(scripted, tmp_path):
    responders()
    data = write_data(tmp_path)
    config = write_config(tmp_path, data)
    assert cli.invoke(app, ["run", str(config)]).exit_code == 0
    changed = json.loads(data.read_text())
    for item in changed["test"]:
        item["answer"] = "B"
    data.write_text(json.dumps(changed))
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert "the dataset or scorer changed since this run started" in result.output


def test_methods_that_select_on_dev_refuse_an_empty_dev_split(scripted, tmp_path):
    responders()
    config = write_config(tmp_path, write_data(tmp_path, n_dev=0), method="single_model")
    result = cli.invoke(app, ["run", str(config)])
    assert result.exit_code == 2
    assert "has no dev split" in result.output


def test_grouped_datasets_summarise_model_scores_by_group():
    lines = [
        {"id": "a", "group": "g1", "score": 1.0, "model_scores": {"m": 1.0}},
        {"id": "b", "group": "g1", "score": 1.0, "model_scores": {"m": 0.0}},
        {"id": "c", "group": "g2", "score": 1.0, "model_scores": {"m": 1.0}},
    ]
    assert runner._model_test_scores(lines, grouped=True) == {"m": 0.5}
    assert runner._model_test_scores(lines, grouped=False) == {"m": pytest.approx(2 / 3)}
