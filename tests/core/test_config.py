from __future__ import annotations

import pytest

from moco_core.config import load_config, parse_config
from moco_core.errors import MocoError

BASE = {
    "method": "majority_vote",
    "models": [{"name": "a", "path": "org/model"}],
    "dataset": {"name": "gsm8k"},
}


def test_defaults_fill_in():
    config = parse_config(dict(BASE))
    assert config.generation.max_new_tokens == 512
    assert config.generation.temperature == 0.7
    assert config.hardware.device == "auto"
    assert str(config.resolved_output_dir()) == "runs/majority_vote-gsm8k"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"bogus": 1}, "bogus: unknown key"),
        ({"generation": {"temperature": -1}}, "generation.temperature"),
        ({"hardware": {"device": "tpu"}}, "hardware.device"),
        ({"models": []}, "models"),
        ({"dataset": {"name": "a", "path": "b"}}, "dataset"),
        ({"dataset": {"name": "gsm8k", "limit": 0}}, "dataset.limit"),
        ({"models": [{"name": "a", "path": "x/y"}, {"name": "a", "path": "x/z"}]}, "used twice"),
        ({"models": [{"name": "a", "path": "x/y", "colour": 1}]}, "models.0.colour: unknown key"),
    ],
)
def test_bad_configs_name_the_field(change, expected):
    with pytest.raises(MocoError) as error:
        parse_config({**BASE, **change}, "cfg.yaml")
    message = str(error.value)
    assert message.startswith("cfg.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_malformed_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("method: x\nmodels: [\n  - a: b\n")
    with pytest.raises(MocoError, match=r"bad.yaml: malformed config \(line \d+\)"):
        load_config(path)


def test_json_config_and_missing_file(tmp_path):
    import json

    path = tmp_path / "c.json"
    path.write_text(json.dumps(BASE))
    assert load_config(path).method == "majority_vote"
    with pytest.raises(MocoError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
