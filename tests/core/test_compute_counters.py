"""The pool's compute counters: generated tokens and forward passes per model, for every kind of call.

Expected counts come from first principles: transformers' own ``generate`` over the same batch (its
returned token ids), the joint decoder's steps x models, the fake server's ``usage``.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from moco_core import runner
from moco_core.backends.bank import BankBackend
from moco_core.backends.hf import eos_ids, render_prompt
from moco_core.banks.bank import write_bank
from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig, parse_config
from moco_core.engines.decoding import load_joint_decoder
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.testing import ScriptedTaskTypesPlugin, registered_plugin
from moco_core.types import GenerationRequest, GenerationSettings

PROMPTS = ["what is 2 + 3?", "Answer with the letter of the correct option.", "The answer is", "hi", "a b c d e f"]
K = 6
GREEDY = GenerationSettings(max_new_tokens=K, temperature=0.0)


def make_pool(members, batch_size=8, cache=None) -> ModelPool:
    models = [ModelConfig(name=n, path=str(p)) for n, p in members.items()]
    return ModelPool(
        models,
        HardwareConfig(device="cpu"),
        batch_size,
        GenerationCache(cache, enabled=True) if cache else None,
        get_registry().backends,
        get_plugin_manager().hook,
    )


def reference(handle, prompts: list[str]) -> tuple[list[int], int, list[int]]:
    """transformers' greedy generate over one batch: generated tokens per row (stop token included),
    decoding steps (one forward each), and each prompt's length."""
    tokenizer = handle.tokenizer
    texts = [render_prompt(tokenizer, p, None) for p in prompts]
    special = not getattr(tokenizer, "chat_template", None)
    lengths = [len(tokenizer(t, add_special_tokens=special)["input_ids"]) for t in texts]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=special)
    stops = eos_ids(handle)
    with torch.inference_mode():
        sequences = handle.model.generate(
            **encoded,
            max_new_tokens=K,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(stops),
        )
    new = sequences[:, encoded["input_ids"].shape[1] :].tolist()
    counts = [next((i + 1 for i, t in enumerate(row) if t in stops), len(row)) for row in new]
    return counts, len(new[0]), lengths


def test_plain_generation_counts_what_transformers_returns_and_cached_reruns_count_nothing_new(
    tiny_pool_paths, tmp_path
):
    pool = make_pool({"m": tiny_pool_paths[0]}, cache=tmp_path / "cache")
    generations = pool.generate("m", PROMPTS, GREEDY)
    handle = pool.load("m").handle
    counter, handle.meter.counter = handle.meter.counter, None  # the reference below is not the pool's work
    tokens, steps, lengths = reference(handle, PROMPTS)
    handle.meter.counter = counter
    assert [g.tokens for g in generations] == tokens
    compute = pool.compute.to_metrics()
    assert compute["generated_tokens"] == {"m": sum(tokens)} and compute["generations"] == {"m": len(PROMPTS)}
    assert compute["prompt_tokens"] == {"m": sum(lengths)}
    assert compute["forward_passes"] == {"m": steps}, "one batch: one forward per decoding step"
    assert compute["forward_tokens"] == {"m": len(PROMPTS) * (max(lengths) + steps - 1)}
    assert compute["engine_tokens"] == {} and compute["complete"]
    pool.close()

    again = make_pool({"m": tiny_pool_paths[0]}, cache=tmp_path / "cache")
    assert [g.text for g in again.generate("m", PROMPTS, GREEDY)] == [g.text for g in generations]
    cached = again.compute.to_metrics()
    assert cached["generated_tokens"] == {} and cached["forward_passes"] == {} and cached["total_tokens"] == 0
    assert cached["cached_generations"] == {"m": len(PROMPTS)} and cached["cached_tokens"] == {"m": sum(tokens)}
    again.close()


def no_stop(stop_ids):
    """A step hook that forbids the stop tokens, so every batch decodes exactly K steps."""

    def hook(step):
        combined = step.combined.clone()
        combined[:, sorted(stop_ids)] = float("-inf")
        return combined

    return hook


def test_joint_decoding_counts_steps_times_models_per_batch(tiny_pool_paths):
    pool = make_pool({"m0": tiny_pool_paths[0], "m1": tiny_pool_paths[1]}, batch_size=2)
    decoder = load_joint_decoder(pool, ["m0", "m1"])
    prompts = decoder.render(PROMPTS, [None, None])
    seeds = list(range(len(PROMPTS)))
    decoder.decode(prompts, lambda lps: (lps[0] + lps[1]) / 2, GREEDY, seeds, step_hook=no_stop(decoder.stop_ids))
    batches = math.ceil(len(PROMPTS) / 2)
    compute = pool.compute.to_metrics()
    assert compute["forward_passes"] == {"m0": batches * K, "m1": batches * K}
    assert compute["engine_tokens"] == {"m0": len(PROMPTS) * K, "m1": len(PROMPTS) * K}
    assert compute["generated_tokens"] == {}, "the engine returns no generations of its own"
    pool.close()


def test_adapters_over_one_base_are_counted_under_their_own_names(tiny_pool_paths, tmp_path):
    pytest.importorskip("peft")
    a = make_adapter(tiny_pool_paths[0], tmp_path / "adapter-a", 1)
    b = make_adapter(tiny_pool_paths[0], tmp_path / "adapter-b", 2)
    pool = make_pool({"a": a, "b": b, "base": tiny_pool_paths[0]}, batch_size=8)
    for name in ("a", "b", "base"):
        pool.generate(name, PROMPTS[:2], GREEDY)
    plain = dict(pool.compute.forward_passes)
    assert set(plain) == {"a", "b", "base"} and all(0 < n <= K for n in plain.values())
    pool.compute.reset()
    decoder = load_joint_decoder(pool, ["a", "b"])
    prompts = decoder.render(PROMPTS, [None, None])
    decoder.decode(prompts, lambda lps: lps[0], GREEDY, [0] * len(PROMPTS), step_hook=no_stop(decoder.stop_ids))
    assert dict(pool.compute.forward_passes) == {"a": K, "b": K}
    pool.close()


def make_adapter(base, folder, seed):
    """A LoRA adapter with random non-zero weights, so it computes something other than its base."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(base), config).save_pretrained(folder)
    return folder


@pytest.fixture()
def letter_tasks(fresh_cache_dir):
    with registered_plugin(ScriptedTaskTypesPlugin(), "letter"):
        yield


def question(i, split):
    return PROMPTS[i] if split == "test" else f"dev: {PROMPTS[i]}"


def letters_file(tmp_path, n_test=4, n_dev=3):
    def item(i, split):
        return {"id": f"{split}{i}", "question": question(i, split), "choices": {"A": "x", "B": "y"}, "answer": "A"}

    data = {"name": "letters", "task_type": "letter"}
    data["dev"] = [item(i, "dev") for i in range(n_dev)]
    data["test"] = [item(i, "test") for i in range(n_test)]
    path = tmp_path / "letters.json"
    path.write_text(json.dumps(data))
    return path


def run_config(tmp_path, models, method, out, **changes):
    return parse_config(
        {
            "method": method,
            "models": models,
            "dataset": {"path": str(letters_file(tmp_path))},
            "generation": {"max_new_tokens": K, "batch_size": 16, "temperature": 0.0},
            "hardware": {"device": "cpu"},
            "output_dir": str(tmp_path / out),
            **changes,
        },
        "test",
    )


def test_a_single_model_run_records_the_counts_and_a_rerun_only_cached_ones(letter_tasks, tiny_pool_paths, tmp_path):
    models = [{"name": "m", "path": str(tiny_pool_paths[0])}]
    first = runner.run(run_config(tmp_path, models, "single_model", "first")).metrics["compute"]
    pool = make_pool({"m": tiny_pool_paths[0]})
    dev_tokens, dev_steps, _ = reference(pool.load("m").handle, [question(i, "dev") for i in range(3)])
    test_tokens, test_steps, _ = reference(pool.load("m").handle, PROMPTS[:4])
    pool.close()
    assert first["generated_tokens"] == {"m": sum(dev_tokens) + sum(test_tokens)}
    assert first["forward_passes"] == {"m": dev_steps + test_steps}, "one batch for dev, one for test"
    assert first["generations"] == {"m": 7} and first["cached_generations"] == {} and first["complete"]

    second = runner.run(run_config(tmp_path, models, "single_model", "second")).metrics["compute"]
    assert second["generated_tokens"] == {} and second["forward_passes"] == {} and second["total_tokens"] == 0
    assert second["cached_generations"] == {"m": 7} and second["total_cached_tokens"] == first["total_tokens"]


def test_a_joint_decoding_run_counts_both_models_and_its_cached_rerun_says_what_it_cost(
    letter_tasks, tiny_pool_paths, tmp_path
):
    models = [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths[:2])]
    first = runner.run(run_config(tmp_path, models, "logit_fusion", "first")).metrics["compute"]
    passes = first["forward_passes"]
    assert passes["m0"] == passes["m1"] > 0, "every step runs both models"
    assert first["engine_tokens"]["m0"] == first["engine_tokens"]["m1"] >= 4
    second = runner.run(run_config(tmp_path, models, "logit_fusion", "second")).metrics["compute"]
    assert second["forward_passes"] == {} and second["engine_tokens"] == {}
    assert second["cached_generations"] == {"m0": 4, "m1": 4}
    assert second["untracked_cached_outputs"] == 0 and second["complete"]
    engine = sum(first["engine_tokens"].values())
    assert abs(second["total_cached_tokens"] - engine) <= 8 * 0.5, "each cached answer carries its share"


def load_test_module(name):
    import importlib.util
    import sys
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(f"_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_openai_backend_counts_the_servers_usage(letter_tasks, tmp_path):
    fake = load_test_module("test_openai_backend")  # its fake OpenAI-compatible server
    FakeServer, api_model = fake.FakeServer, fake.api_model

    with FakeServer() as server:
        models = [api_model("good", server.url), api_model("bad", server.url)]
        config = run_config(tmp_path, models, "majority_vote", "run")
        compute = runner.run(config).metrics["compute"]
    per_generation = 4  # the fake server answers "<letter> is my answer" and counts its words as completion_tokens
    assert compute["generated_tokens"] == {"good": 7 * per_generation, "bad": 7 * per_generation}
    assert compute["prompt_tokens"] == {"good": 7 * 3, "bad": 7 * 3}
    assert compute["forward_passes"] == {} and compute["complete"]


def test_bank_responses_count_their_stored_tokens_or_say_they_have_none(tmp_path):
    items = [
        {"input": "q1", "bank": {"m": {"response": "A", "score": 1, "cost": 0.1, "completion_tokens": 12}}},
        {"input": "q2", "bank": {"m": {"response": "B", "score": 0, "cost": 0.1}}},
    ]
    bank = write_bank("b", items, tmp_path / "bank.json", 0.0, 0)
    backend = BankBackend()
    handle = backend.load("m", "cpu", "float32", options={"bank": str(bank)})
    found = backend.generate(handle, [GenerationRequest("q1"), GenerationRequest("q2")], GREEDY, 4)
    assert [g.tokens for g in found] == [12, None]
