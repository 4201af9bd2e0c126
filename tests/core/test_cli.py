from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from moco_core.cli import app
from moco_core.testing import ScriptedBackendPlugin, assert_one_line_error, registered_plugin

cli = CliRunner()


@pytest.fixture()
def data_file(tmp_path):
    item = {"id": 1, "question": "q?", "choices": {"A": "x", "B": "y"}, "answer": "A"}
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"name": "d", "task_type": "multiple_choice", "dev": [item], "test": [item]}))
    return path


def config_file(tmp_path, **overrides):
    config = {
        "method": "majority_vote",
        "models": [{"name": "a", "path": str(tmp_path / "model-a")}],
        "dataset": {"name": "gsm8k"},
        **overrides,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unknown_method_suggests_closest(tmp_path):
    result = cli.invoke(app, ["validate", str(config_file(tmp_path, method="majority_vot"))])
    assert_one_line_error(result, "method: unknown method 'majority_vot'", "did you mean 'majority_vote'")


def test_bad_param_value_names_the_param(tmp_path):
    result = cli.invoke(app, ["validate", str(config_file(tmp_path, params={"tie_break": "coin"}))])
    assert_one_line_error(result, "params: tie_break")


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("nudging", {"base_model": True}, "base_model"),  # true is not the pool index 1
        ("nudging", {"gamma": "0.5"}, "gamma"),  # a string is not a number
        ("cascade", {"defer_fraction": False}, "defer_fraction"),
        ("majority_vote", {"tie_break": 1}, "tie_break"),
    ],
)
def test_params_are_checked_strictly_as_the_json_of_a_config(tmp_path, method, params, field):
    models = [{"name": n, "path": str(tmp_path / n)} for n in ("a", "b")]
    result = cli.invoke(app, ["validate", str(config_file(tmp_path, method=method, models=models, params=params))])
    assert_one_line_error(result, f"params: {field}")


def test_an_integer_is_a_float_param(tmp_path, tiny_pool_paths):
    models = [{"name": n, "path": str(p)} for n, p in zip("ab", tiny_pool_paths[:2], strict=False)]
    config = config_file(tmp_path, method="nudging", models=models, params={"gamma": 1})
    result = cli.invoke(app, ["validate", str(config)])
    assert "params" not in result.output


def test_unknown_param_is_refused(tmp_path):
    result = cli.invoke(app, ["validate", str(config_file(tmp_path, params={"rounds": 3}))])
    assert_one_line_error(result, "params: rounds: unknown key")


def test_missing_model_folder(tmp_path):
    result = cli.invoke(app, ["run", str(config_file(tmp_path))])
    assert_one_line_error(result, "models[0].path", "model folder not found")


def test_pool_too_small_for_method(tmp_path, tiny_pool_paths):
    models = [{"name": "a", "path": str(tiny_pool_paths[0]), "description": "x"}]
    result = cli.invoke(app, ["validate", str(config_file(tmp_path, method="prompt_routing", models=models))])
    assert_one_line_error(result, "models: prompt_routing needs >=2 models, the pool has 1")


def test_routing_needs_descriptions(tmp_path, tiny_pool_paths):
    models = [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths[:2])]
    result = cli.invoke(app, ["validate", str(config_file(tmp_path, method="prompt_routing", models=models))])
    assert_one_line_error(result, "models[0].description")


def test_missing_data_file(tmp_path, tiny_pool_paths):
    models = [{"name": "a", "path": str(tiny_pool_paths[0])}]
    config = config_file(tmp_path, models=models, dataset={"path": str(tmp_path / "nope.json")})
    assert_one_line_error(cli.invoke(app, ["run", str(config)]), "nope.json: data file not found")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "malformed JSON"),
        (json.dumps({"task_type": "multiple_choice", "dev": []}), "missing list 'test'"),
        (json.dumps({"task_type": "multiple_choice", "test": [{"id": 1, "choices": {"A": "x"}}]}), "test[0]"),
    ],
)
def test_malformed_data_file(tmp_path, tiny_pool_paths, content, fragment):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    models = [{"name": "a", "path": str(tiny_pool_paths[0])}]
    config = config_file(tmp_path, models=models, dataset={"path": str(bad)})
    assert_one_line_error(cli.invoke(app, ["validate", str(config)]), "bad.json", fragment)


def test_unknown_backend_and_key(tmp_path):
    models = [{"name": "a", "path": "x", "backend": "vllmm"}]
    assert_one_line_error(cli.invoke(app, ["validate", str(config_file(tmp_path, models=models))]), "models[0].backend")
    assert_one_line_error(cli.invoke(app, ["validate", str(config_file(tmp_path, extra=1))]), "extra: unknown key")


def test_malformed_config_and_missing_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("method: [unclosed\n")
    assert_one_line_error(cli.invoke(app, ["run", str(path)]), "bad.yaml: malformed config")
    assert_one_line_error(cli.invoke(app, ["run", str(tmp_path / "missing.yaml")]), "config file not found")


def test_validate_accepts_a_good_config(tmp_path, data_file):
    with registered_plugin(ScriptedBackendPlugin(), "scripted"):
        models = [{"name": "a", "path": "p", "backend": "scripted"}]
        config = config_file(tmp_path, models=models, dataset={"path": str(data_file)})
        result = cli.invoke(app, ["validate", str(config)])
    if "no installed plugin scores" in result.output:
        pytest.skip("moco-evals is not installed")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: majority_vote on d (1 dev, 1 test) with 1 models")


def test_list_methods_info_and_plugins():
    listing = cli.invoke(app, ["list-methods"])
    assert listing.exit_code == 0
    assert "majority_vote" in listing.output and "moco-methods-text" in listing.output
    data = json.loads(cli.invoke(app, ["list-methods", "--json"]).output)
    keys = {m["key"] for m in data["methods"]}
    assert {"single_model", "majority_vote", "prompt_routing"} <= keys
    info = cli.invoke(app, ["info", "majority_vote"])
    assert "tie_break" in info.output and "'random'" in info.output and "dev, random" in info.output
    assert_one_line_error(cli.invoke(app, ["info", "majority_vot"]), "did you mean 'majority_vote'")
    plugins = cli.invoke(app, ["plugins"])
    assert "moco-core" in plugins.output and "moco_register_methods" in plugins.output


def test_unavailable_device_is_a_config_error(tmp_path, tiny_pool_paths, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    models = [{"name": "a", "path": str(tiny_pool_paths[0])}]
    config = config_file(tmp_path, models=models, hardware={"device": "cuda:1"})
    assert_one_line_error(cli.invoke(app, ["validate", str(config)]), "hardware.device: cuda:1 requested")


def test_method_whose_code_cannot_be_imported(tmp_path, tiny_pool_paths):
    from moco_core.hookspecs import hookimpl
    from moco_core.registry import MethodSpec

    class BrokenImplementation:
        @hookimpl
        def moco_register_methods(self, register):
            register(MethodSpec(key="broken_method", level="text", implementation="no_such_module:X", summary="x"))

    models = [{"name": "a", "path": str(tiny_pool_paths[0])}]
    with registered_plugin(BrokenImplementation(), "broken-impl"):
        result = cli.invoke(app, ["validate", str(config_file(tmp_path, method="broken_method", models=models))])
    assert_one_line_error(result, "method: broken_method", "cannot be imported", "no_such_module")


def test_non_utf8_user_file(tmp_path, tiny_pool_paths):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"question,answer\n\xff\xfe caf\xe9,1\n")
    models = [{"name": "a", "path": str(tiny_pool_paths[0])}]
    config = config_file(tmp_path, models=models, dataset={"path": str(bad), "task_type": "exact_match"})
    assert_one_line_error(cli.invoke(app, ["validate", str(config)]), "bad.csv: not UTF-8 text")


def test_listings_have_json_output():
    datasets = json.loads(cli.invoke(app, ["list-datasets", "--json"]).output)["datasets"]
    plugins = json.loads(cli.invoke(app, ["plugins", "--json"]).output)["plugins"]
    assert any(p["distribution"] == "moco-core" and "moco_register_backends" in p["hooks"] for p in plugins)
    if datasets:  # moco-evals installed
        gsm8k = next(d for d in datasets if d["key"] == "gsm8k")
        assert gsm8k["task_type"] == "exact_match" and gsm8k["distribution"] == "moco-evals"
        info = json.loads(cli.invoke(app, ["info", "gsm8k", "--json"]).output)
        assert info["kind"] == "dataset" and info["domain"] == gsm8k["domain"]


def test_info_shows_type_default_allowed_values_and_description():
    data = json.loads(cli.invoke(app, ["info", "logit_fusion", "--json"]).output)
    params = {p["name"]: p for p in data["parameters"]}
    assert params["space"] == {
        "name": "space",
        "type": "str",
        "default": "prob",
        "required": False,
        "allowed": "prob, logit",
        "description": params["space"]["description"],
    }
    assert params["space"]["description"] and params["weights"]["allowed"] == "each >= 0.0"
    assert "arXiv" in data["reference"]
    text = cli.invoke(app, ["info", "majority_vote"]).output
    header = next(line for line in text.splitlines() if line.startswith("name"))
    assert header.split() == ["name", "type", "default", "allowed", "description"]
    assert "samples_per_model  int" in text and ">= 1" in text


def test_every_official_method_documents_its_parameters_and_reference():
    from moco_core.official import official_distribution
    from moco_core.paraminfo import describe_params
    from moco_core.plugins import get_registry

    for key, spec in get_registry().methods.items():
        if official_distribution("method", key) is None:
            continue
        assert spec.reference, key
        undocumented = [p["name"] for p in describe_params(spec.params) if not p["description"]]
        assert not undocumented, f"{key}: parameters without a description: {undocumented}"


def test_unknown_official_keys_name_the_distribution_to_install():
    from moco_core.config import DatasetConfig
    from moco_core.errors import MocoError
    from moco_core.registry import Registry
    from moco_core.validation import load_dataset, resolve_method

    with pytest.raises(MocoError, match="'single_model' is in moco-methods-api: pip install moco-methods-api"):
        resolve_method(Registry(), "single_model")
    with pytest.raises(MocoError, match="'gsm8k' is in moco-evals: pip install moco-evals"):
        load_dataset(DatasetConfig(name="gsm8k"), Registry())
    with pytest.raises(MocoError, match=r"unknown method 'my_own_method'$"):
        resolve_method(Registry(), "my_own_method")


def test_official_table_matches_what_the_official_distributions_register():
    from moco_core.official import DATASETS, METHODS, official_distribution
    from moco_core.plugins import get_registry

    registry = get_registry()
    for kind, specs, table in (("method", registry.methods, METHODS), ("dataset", registry.datasets, DATASETS)):
        for key, spec in specs.items():
            if spec.distribution in table:
                assert official_distribution(kind, key) == spec.distribution, f"{key} missing from official.py"


def test_cache_info_and_clear(fresh_cache_dir):
    import sqlite3
    import time

    from moco_core.cache import GenerationCache

    cache = GenerationCache()
    cache.put_many({"new": {"text": "a"}, "old": {"text": "b"}, "older": {"text": "c"}})
    cache.close()
    with sqlite3.connect(cache.path) as connection:
        connection.execute("UPDATE entries SET created = ? WHERE key != 'new'", (time.time() - 10 * 86400,))
    info = json.loads(cli.invoke(app, ["cache", "info", "--json"]).output)
    assert info["entries"] == 3 and info["path"] == str(cache.path) and info["bytes"] > 0
    assert "entries: 3" in cli.invoke(app, ["cache", "info"]).output
    assert_one_line_error(cli.invoke(app, ["cache", "clear", "--older-than", "ten days"]), "--older-than")
    result = cli.invoke(app, ["cache", "clear", "--older-than", "7d"])
    assert result.exit_code == 0 and result.output.startswith("removed 2 cached generations; 1 left")
    assert GenerationCache().get_many(["new", "old"]) == {"new": {"text": "a"}}
    assert cli.invoke(app, ["cache", "clear"]).output.startswith("removed 1 cached generations; 0 left")


def test_info_on_an_official_key_that_is_not_installed_names_the_distribution(monkeypatch):
    from moco_core.plugins import reset

    monkeypatch.setenv("MOCO_LOAD_PLUGINS", "")
    reset()
    try:
        result = cli.invoke(app, ["info", "logit_fusion"])
    finally:
        monkeypatch.delenv("MOCO_LOAD_PLUGINS")
        reset()
    assert_one_line_error(result, "'logit_fusion' is in moco-methods-logit: pip install moco-methods-logit")
