"""The notebook API: ``from moco_core import run, load_run, predictions_frame``."""

from __future__ import annotations

import json

import pytest

from moco_core.errors import MocoError
from moco_core.testing import (
    scripted_plugins,
    set_responder,
)


@pytest.fixture()
def scripted(fresh_cache_dir):
    with scripted_plugins():
        set_responder("api-A", "A!")
        set_responder("api-B", "B!")
        yield


def config_dict(tmp_path, n_test=5):
    items = [
        {"id": f"q{i}", "question": f"q {i}", "choices": {"A": "x", "B": "y"}, "answer": "A"} for i in range(n_test)
    ]
    data = tmp_path / "letters.json"
    data.write_text(json.dumps({"task_type": "letter", "dev": items[:2], "test": items}))
    return {
        "method": "single_model",
        "models": [
            {"name": "good", "path": "api-A", "backend": "scripted"},
            {"name": "bad", "path": "api-B", "backend": "scripted"},
        ],
        "dataset": {"path": str(data)},
        "output_dir": str(tmp_path / "run"),
    }


def test_run_a_dict_with_overrides_and_read_results_as_objects(scripted, tmp_path):
    from moco_core import run

    result = run(config_dict(tmp_path), {"dataset.limit": 3, "generation.temperature": 0})
    assert result.output_dir == tmp_path / "run"
    assert result.metrics["score"] == {"mean": 1.0, "count": 3}
    assert result.config.generation.temperature == 0 and result.config.dataset.limit == 3
    assert [p["model_scores"] for p in result.predictions] == [{"good": 1.0, "bad": 0.0}] * 3
    assert result.resumed == 0
    again = run(config_dict(tmp_path), ["dataset.limit=3", "generation.temperature=0"])
    assert again.resumed == 3 and again.metrics["score"]["count"] == 3


def test_run_a_file_and_load_a_run_directory(scripted, tmp_path):
    import yaml

    from moco_core import load_run, run

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    result = run(path)
    loaded = load_run(tmp_path / "run")
    assert loaded.metrics == result.metrics and loaded.predictions == result.predictions
    assert loaded.config == result.config


def test_bad_input_raises_moco_error_naming_the_field(scripted, tmp_path):
    from moco_core import load_run, run

    with pytest.raises(MocoError, match=r"generation\.temprature: unknown key 'temprature'"):
        run(config_dict(tmp_path), {"generation.temprature": 0})
    with pytest.raises(MocoError, match=r"no metrics\.json"):
        load_run(tmp_path)


def test_predictions_frame(scripted, tmp_path):
    pd = pytest.importorskip("pandas")
    from moco_core import predictions_frame, run

    result = run(config_dict(tmp_path))
    frame = predictions_frame(tmp_path / "run")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 5
    assert {"method", "dataset", "index", "output", "score", "gold", "model_scores.good"} <= set(frame.columns)
    assert (frame["method"] == "single_model").all() and frame["model_scores.bad"].sum() == 0
    assert result.to_dataframe().equals(frame)
