"""merge: mergekit methods by name, recipes refused before loading, merged weights checked exactly."""

from __future__ import annotations

import json

import pytest
import torch

from moco_core.errors import MocoError
from moco_core.plugins import get_registry
from moco_methods_weight.merge import Merge
from moco_methods_weight.params import MergeParams

from .conftest import make_context, mc_file, moco_run, run_config, weights_of

pytestmark = pytest.mark.slow


def test_registered_with_its_parameters():
    spec = get_registry().methods["merge"]
    assert spec.level == "weight" and spec.load() is Merge
    assert spec.params is MergeParams


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "lineer"}, "params: merge: mergekit has no merge method 'lineer' (known: "),
        ({"method": "ties", "parameters": {"dens": 0.5}}, "merge: ties has no parameter 'dens' (known: "),
        ({"method": "slerp", "base_model": "m0"}, "merge: slerp needs parameter 't'"),
        ({"method": "ties"}, "merge: ties needs a base_model"),
        ({"method": "slerp", "base_model": "m0", "parameters": {"t": "half"}}, "merge: slerp parameter 't'"),
        ({"method": "ties", "base_model": "m0", "parameters": {"density": [0.5, "x"]}}, "parameter 'density'"),
        ({"method": "ties", "base_model": "m0", "parameters": {"normalize": "maybe"}}, "parameter 'normalize'"),
    ],
)
def test_bad_recipes_are_one_line_errors(params, message):
    MergeParams(method="linear", parameters={"normalize": True})  # a value of the right type passes
    with pytest.raises(MocoError) as error:
        MergeParams(**params)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    if "known" in message:
        assert "linear" in str(error.value) or "density" in str(error.value)


def test_weights_one_zero_zero_give_model_one_and_uniform_gives_the_mean(family, tmp_path, fresh_cache_dir):
    members = {k: family[k] for k in ("m0", "m1", "m2")}
    inputs = [weights_of(p) for p in members.values()]
    one = Merge(make_context(members, tmp_path, MergeParams(method="linear", weights=[1, 0, 0])))
    one.prepare()
    merged = weights_of(one.ctx.metrics["merged_model_path"])
    assert merged.keys() == inputs[0].keys()
    assert all(torch.equal(merged[k], inputs[0][k]) for k in merged)
    mean = Merge(make_context(members, tmp_path, MergeParams(method="linear")))
    mean.prepare()
    merged = weights_of(mean.ctx.metrics["merged_model_path"])
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, sum(w[name] for w in inputs) / 3)


@pytest.mark.parametrize(
    ("method", "parameters", "inputs"),
    [
        ("slerp", {"t": 0.5}, ["m0"]),
        ("ties", {"density": 0.5}, ["m0", "m1", "m2"]),
        ("dare_ties", {"density": 0.5}, ["m0", "m1", "m2"]),
        ("task_arithmetic", {}, ["m0", "m1"]),
        ("model_stock", {}, ["m0", "m1", "m2"]),
    ],
)
def test_methods_with_a_base_merge_and_answer(family, tmp_path, fresh_cache_dir, method, parameters, inputs):
    members = {"base": family["base"], **{k: family[k] for k in inputs}}
    params = MergeParams(method=method, base_model="base", parameters=parameters)
    merge = Merge(make_context(members, tmp_path, params))
    assert merge.inputs == inputs
    merge.prepare()
    predictions = merge.predict(merge.ctx.dataset.test)
    folder = merge.ctx.metrics["merged_model_path"]
    recipe = json.loads((tmp_path.parent / folder / "moco_identity.json").read_text())
    assert recipe["method"] == method and recipe["base_model"] is not None
    merged = weights_of(folder)
    sources = [weights_of(family[k]) for k in ["base", *inputs]]
    name = "model.layers.0.mlp.up_proj.weight"
    assert all(not torch.equal(merged[name], s[name]) for s in sources)
    expected = merge.ctx.pool.generate(merge.model, [e.prompt for e in merge.ctx.dataset.test], merge.ctx.settings)
    assert [p.output for p in predictions] == [g.text for g in expected]


def test_wrong_input_count_and_weights_are_refused(family, tmp_path):
    two = {"base": family["base"], "m0": family["m0"], "m1": family["m1"]}
    with pytest.raises(MocoError, match=r"slerp merges 2..2 models \(base included\), got 3"):
        Merge(make_context(two, tmp_path, MergeParams(method="slerp", base_model="base", parameters={"t": 0.5})))
    with pytest.raises(MocoError, match=r"params.weights: expected 2 weights"):
        Merge(make_context(two, tmp_path, MergeParams(method="linear", base_model="base", weights=[1.0])))


def test_runs_through_the_cli_and_refuses_a_shape_mismatch_before_loading(family, tmp_path, fresh_cache_dir):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from moco_core.testing import tiny_llama_config

    data = mc_file(tmp_path)
    models = [("base", family["base"]), ("m0", family["m0"]), ("m1", family["m1"])]
    path = run_config(
        tmp_path, models, "merge", {"method": "ties", "base_model": "base", "parameters": {"density": 0.7}}, data
    )
    code, output = moco_run(path)
    assert code == 0, output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"]["count"] == 2 and metrics["merge"]["inputs"] == ["m0", "m1"]

    tokenizer = AutoTokenizer.from_pretrained(family["base"])
    wide = tmp_path / "wide"
    config = tiny_llama_config(tokenizer, tie_word_embeddings=False)
    config.intermediate_size = 96
    LlamaForCausalLM(config).save_pretrained(wide)
    tokenizer.save_pretrained(wide)
    path = run_config(tmp_path, [*models[:2], ("wide", wide)], "merge", {"method": "linear"}, data, "bad")
    code, output = moco_run(path, "validate")
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1
    assert "models[2] (wide): tensor 'model.layers.0.mlp.down_proj.weight' has shape [64, 96]" in lines[0]
    assert "models[0] (base)" in lines[0]
