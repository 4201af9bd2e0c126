"""Core weight-space search: shapes from headers, linear and LoRA candidates, the in-memory pool member."""

from __future__ import annotations

import pytest
import torch

from moco_core.config import ModelConfig
from moco_core.errors import MocoError
from moco_core.weight_space import (
    CandidateSlot,
    LinearSpace,
    LoraSpace,
    ResidentWeights,
    check_lora_pool,
    check_same_shapes,
    load_weights,
    write_candidate,
)
from moco_methods_weight.params import ExpoParams

from .conftest import GREEDY, make_context

pytestmark = pytest.mark.slow


def test_shape_check_names_the_first_missing_tensor(family, tmp_path):
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((family["m0"] / "config.json").read_text())
    tensors = load_file(str(family["m0"] / "model.safetensors"))
    del tensors["model.norm.weight"]
    save_file(tensors, str(broken / "model.safetensors"))
    check_same_shapes([("a", str(family["m0"])), ("b", str(family["m1"]))])
    with pytest.raises(MocoError, match=r"^b: has no tensor 'model.norm.weight', which a has; weights must match$"):
        check_same_shapes([("a", str(family["m0"])), ("b", str(broken))])
    with pytest.raises(MocoError, match=r"^.*broken: has no tensor 'model.norm.weight'; weights must match$"):
        LinearSpace([str(family["m0"]), str(broken)], "float32")


def test_linear_candidates_reuse_one_buffer(family):
    paths = [str(family[k]) for k in ("m0", "m1", "m2")]
    space = LinearSpace(paths, "float32")
    inputs = [load_weights(p) for p in paths]
    first = space.materialize([0.5, -0.25, 0.75])
    for name, tensor in first.items():
        torch.testing.assert_close(tensor, 0.5 * inputs[0][name] - 0.25 * inputs[1][name] + 0.75 * inputs[2][name])
    again = space.materialize([1.0, 0.0, 0.0])
    assert again is first
    assert all(torch.equal(again[k], inputs[0][k]) for k in again)


def test_lora_composition_one_zero_is_adapter_one(family, adapters):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base = str(family["base"])
    labelled = [(f"models[{i}]", str(p), None) for i, p in enumerate(adapters)]
    assert check_lora_pool(labelled, None) == base
    space = LoraSpace([str(p) for p in adapters], base, "float32")
    composed = space.materialize([1.0, 0.0])
    merged = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(base), str(adapters[0])).merge_and_unload()
    expected = merged.state_dict()
    changed = [k for k in composed if not torch.equal(composed[k], space.base[k])]
    assert changed and all(".q_proj." in k or ".v_proj." in k for k in changed)
    for name, tensor in composed.items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-6)
    half = space.materialize([0.5, 0.5])
    name = "model.layers.1.self_attn.v_proj.weight"
    (a0, b0), (a1, b1) = space.adapters[0].factors[name], space.adapters[1].factors[name]
    torch.testing.assert_close(half[name], space.base[name] + (0.5 * b0 + 0.5 * b1) @ (0.5 * a0 + 0.5 * a1))


def test_lora_pool_checks_are_one_line(family, adapters):
    with pytest.raises(MocoError, match=r"^models\[1\]: .* is not a LoRA adapter folder"):
        check_lora_pool([("models[0]", str(adapters[0]), None), ("models[1]", str(family["m0"]), None)], None)


def test_a_candidate_answers_in_place_and_its_written_folder_reuses_its_answers(family, tmp_path, fresh_cache_dir):
    ctx = make_context({k: family[k] for k in ("m0", "m1")}, tmp_path, ExpoParams())
    pool = ctx.pool
    space = LinearSpace([str(family["m0"]), str(family["m1"])], "float32")
    slot = CandidateSlot(pool, "candidate", space, {"method": "test"}, pool.config("m0"))
    prompts = [e.prompt for e in ctx.dataset.dev]
    name = slot.point([1.0, 0.0])
    assert [g.text for g in pool.generate(name, prompts, GREEDY)] == [
        g.text for g in pool.generate("m0", prompts, GREEDY)
    ]
    slot.point([0.5, 0.5])
    mixed = [g.text for g in pool.generate(name, prompts, GREEDY)]
    pool.generate(name, prompts, GREEDY)
    assert slot.swaps == 2
    assert len(pool.resident()) == 2
    resident = next(m for k, m in pool._resident.items() if k[1].endswith("#candidate")).handle.model
    for key, tensor in resident.state_dict().items():
        assert torch.equal(tensor, space.materialize([0.5, 0.5])[key])
    storage = {p.untyped_storage().data_ptr() for p in resident.parameters()}
    assert len(storage) == 1  # one flat tensor, written in place by every candidate
    slot.point([0.25, 0.75])
    pool.generate(name, prompts, GREEDY)
    assert {p.untyped_storage().data_ptr() for p in resident.parameters()} == storage
    assert all(torch.equal(t, space.materialize([0.25, 0.75])[k]) for k, t in resident.state_dict().items())
    slot.point([0.5, 0.5])
    assert [g.text for g in pool.generate(name, prompts, GREEDY)] == mixed

    folder = write_candidate(space, space.materialize([0.5, 0.5]), slot.recipe, "float32")
    slot.release()
    assert len(pool.resident()) == 1
    pool.add(ModelConfig(name="written", path=folder))
    made = pool.stats.made
    assert [g.text for g in pool.generate("written", prompts, GREEDY)] == mixed
    assert pool.stats.made == made
    assert write_candidate(space, space.materialize([0.5, 0.5]), slot.recipe, "float32") == folder


def test_resident_weights_cast_into_one_flat_tensor_or_copy_tensor_by_tensor(family):
    from transformers import LlamaForCausalLM

    space = LinearSpace([str(family["m0"]), str(family["m1"])], "float32")
    vector = [0.3, 0.7]
    half = LlamaForCausalLM.from_pretrained(family["m0"], dtype=torch.bfloat16)
    ResidentWeights(half, space.shapes, space.template).load(space, vector)
    expected = {k: v.clone() for k, v in space.materialize(vector).items()}
    assert len({p.untyped_storage().data_ptr() for p in half.parameters()}) == 1
    assert all(torch.equal(t, expected[k].to(torch.bfloat16)) for k, t in half.state_dict().items())

    mixed = LlamaForCausalLM.from_pretrained(family["m0"])
    mixed.model.norm.weight.data = mixed.model.norm.weight.data.double()
    ResidentWeights(mixed, space.shapes, space.template).load(space, vector)
    assert mixed.model.norm.weight.dtype == torch.float64
    assert all(torch.equal(t, expected[k].to(t.dtype)) for k, t in mixed.state_dict().items())
