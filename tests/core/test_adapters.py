"""PEFT adapter folders as pool members: one shared base, outputs equal to the merged weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("peft")

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.errors import MocoError
from moco_core.models import adapter_base, check_model_path, model_identity, tokenizer_fingerprint
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.types import GenerationSettings

PROMPTS = ["what is 2 + 3?", "Answer with the letter of the correct option.", "The answer is"]
GREEDY = GenerationSettings(max_new_tokens=12, temperature=0.0)


def make_adapter(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) A and B, so it changes the base's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def merge_adapter(base: Path, adapter: Path, folder: Path) -> Path:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    PeftModel.from_pretrained(model, adapter).merge_and_unload().save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapters(tiny_pool_paths, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    base = tiny_pool_paths[0]
    a = make_adapter(base, root / "adapter-a", 1)
    b = make_adapter(base, root / "adapter-b", 2)
    return {
        "base": base,
        "a": a,
        "b": b,
        "merged_a": merge_adapter(base, a, root / "merged-a"),
        "merged_b": merge_adapter(base, b, root / "merged-b"),
    }


def make_pool(members: dict[str, Path | ModelConfig], cache: Path | None = None) -> ModelPool:
    models = [m if isinstance(m, ModelConfig) else ModelConfig(name=n, path=str(m)) for n, m in members.items()]
    return ModelPool(
        models,
        HardwareConfig(device="cpu"),
        4,
        GenerationCache(cache, enabled=cache is not None) if cache else None,
        get_registry().backends,
        get_plugin_manager().hook,
    )


def outputs(pool: ModelPool, name: str) -> list:
    return pool.generate(name, PROMPTS, GREEDY, logprobs=True)


def test_adapters_share_one_base_and_match_their_merged_models(adapters):
    pool = make_pool({"a": adapters["a"], "b": adapters["b"], "base": adapters["base"]})
    base_before = outputs(pool, "base")
    got = {name: outputs(pool, name) for name in ("a", "b")}
    assert pool.resident() == [str(adapters["base"].resolve())]
    assert pool.load("a").handle.model is pool.load("b").handle.model
    assert [g.text for g in got["a"]] != [g.text for g in got["b"]]
    assert [g.text for g in outputs(pool, "base")] == [g.text for g in base_before]

    merged = make_pool({"a": adapters["merged_a"], "b": adapters["merged_b"]})
    for name in ("a", "b"):
        expected = outputs(merged, name)
        assert [g.text for g in got[name]] == [g.text for g in expected]
        for mine, theirs in zip(got[name], expected, strict=True):
            assert mine.token_logprobs == pytest.approx(theirs.token_logprobs, abs=1e-4)


def test_interleaved_batches_switch_the_active_adapter(adapters):
    pool = make_pool({"a": adapters["a"], "b": adapters["b"]})
    first_a, first_b = outputs(pool, "a"), outputs(pool, "b")
    fresh = make_pool({"b": adapters["b"], "a": adapters["a"]})
    assert [g.text for g in outputs(fresh, "b")] == [g.text for g in first_b]
    assert [g.text for g in outputs(fresh, "a")] == [g.text for g in first_a]


def test_adapter_identity_covers_the_adapter_and_its_base(adapters, tmp_path):
    pool = make_pool({"a": adapters["a"], "b": adapters["b"]})
    a, b = pool.identity("a"), pool.identity("b")
    assert a != b and a["base"] == b["base"] == model_identity(str(adapters["base"].resolve()), "float32")
    other_base = ModelConfig(name="a2", path=str(adapters["a"]), base=str(adapters["merged_b"]))
    assert make_pool({"a2": other_base}).identity("a2")["base"] != a["base"]


def test_explicit_base_wins_over_adapter_config(adapters, tmp_path):
    moved = shutil.copytree(adapters["a"], tmp_path / "moved")
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(MocoError, match="model folder not found"):
        check_model_path(str(moved))
    check_model_path(str(moved), str(adapters["base"]))
    assert adapter_base(str(moved), str(adapters["base"])) == str(adapters["base"])
    pool = make_pool({"a": ModelConfig(name="a", path=str(moved), base=str(adapters["base"]))})
    reference = make_pool({"a": adapters["a"]})
    assert [g.text for g in outputs(pool, "a")] == [g.text for g in outputs(reference, "a")]


def test_adapter_folders_pass_path_checks_and_follow_their_base(adapters):
    check_model_path(str(adapters["a"]))
    assert tokenizer_fingerprint(str(adapters["a"])) == tokenizer_fingerprint(str(adapters["base"]))
    with pytest.raises(MocoError, match="'base' is given, but this is not an adapter folder"):
        check_model_path(str(adapters["base"]), str(adapters["base"]))


def test_adapter_generations_are_cached_and_evicting_the_base_drops_its_adapters(adapters, tmp_path):
    pool = make_pool({"a": adapters["a"], "b": adapters["b"]}, cache=tmp_path / "cache.sqlite")
    first = outputs(pool, "a")
    pool.close()
    assert pool.resident() == []
    again = outputs(pool, "a")
    assert all(g.cached for g in again) and [g.text for g in again] == [g.text for g in first]
    assert [g.text for g in outputs(pool, "b")] != [g.text for g in first]
    assert pool.resident() == [str(adapters["base"].resolve())]


def test_a_pool_config_with_adapter_members_validates(adapters, tmp_path):
    from moco_core.config import parse_config
    from moco_core.registry import MethodSpec, Requirements
    from moco_core.validation import check_pool

    spec = MethodSpec(
        key="weights",
        level="weight",
        implementation="x:y",
        summary="",
        requirements=Requirements(min_models=2, same_tokenizer=True, same_architecture=True),
    )
    models = [
        {"name": "a", "path": str(adapters["a"])},
        {"name": "b", "path": str(adapters["b"]), "base": str(adapters["base"])},
        {"name": "base", "path": str(adapters["base"])},
    ]
    config = parse_config({"method": "weights", "models": models, "dataset": {"path": "d.json"}})
    check_pool(config, spec, get_registry())
    models[2]["base"] = str(adapters["base"])
    config = parse_config({"method": "weights", "models": models, "dataset": {"path": "d.json"}})
    with pytest.raises(MocoError, match=r"models\[2\].path: .*'base' is given, but this is not an adapter folder"):
        check_pool(config, spec, get_registry())


def test_joint_decoding_reads_each_adapter_member_through_its_adapter(adapters):
    from moco_core.engines.decoding import load_joint_decoder

    def fused(pool: ModelPool) -> list[str]:
        decoder = load_joint_decoder(pool, ["a", "b"])
        texts = decoder.render(PROMPTS, [None, None])
        return decoder.decode(texts, lambda lp: lp[0] + lp[1], GREEDY, [0] * len(PROMPTS))

    through_adapters = fused(make_pool({"a": adapters["a"], "b": adapters["b"]}))
    through_merged = fused(make_pool({"a": adapters["merged_a"], "b": adapters["merged_b"]}))
    assert through_adapters == through_merged
