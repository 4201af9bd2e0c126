from __future__ import annotations

import pytest

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.models import model_identity
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.types import GenerationSettings

PROMPTS = ["What is 2 + 3?", "hello", "Put the final answer in a box please, the answer is 42"]
GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, seed=0)
SAMPLED = GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=3)


def make_pool(paths, tmp_path, cache=True, batch_size=4, max_resident=None, system_prompts=None):
    models = [
        ModelConfig(name=f"m{i}", path=str(p), system_prompt=(system_prompts or {}).get(i)) for i, p in enumerate(paths)
    ]
    return ModelPool(
        models,
        HardwareConfig(device="cpu", max_resident_models=max_resident),
        batch_size,
        GenerationCache(tmp_path / "cache.sqlite", enabled=cache),
        get_registry().backends,
        get_plugin_manager().hook,
    )


def test_batched_greedy_matches_one_by_one(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths[:1], tmp_path, cache=False, batch_size=3)
    batched = [g.text for g in pool.generate("m0", PROMPTS, GREEDY)]
    single = [pool.generate("m0", [p], GREEDY)[0].text for p in PROMPTS]
    assert batched == single
    assert any(batched)


def test_sampling_is_seeded_and_batch_independent(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths[:1], tmp_path, cache=False, batch_size=2)
    first = [g.text for g in pool.generate("m0", PROMPTS, SAMPLED)]
    again = [g.text for g in pool.generate("m0", PROMPTS, SAMPLED)]
    alone = pool.generate("m0", PROMPTS[1:2], SAMPLED)[0].text
    other_seed = [g.text for g in pool.generate("m0", PROMPTS, GenerationSettings(8, 1.0, 0.95, seed=4))]
    assert first == again
    assert alone == first[1]
    assert other_seed != first


def test_samples_differ_by_index(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths[:1], tmp_path, cache=False)
    rows = pool.samples("m0", PROMPTS[:1], SAMPLED, 3)
    assert len(rows[0]) == 3
    assert len({g.text for g in rows[0]}) > 1


def test_logprobs_are_returned_per_token(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths[:1], tmp_path, cache=False)
    generation = pool.generate("m0", PROMPTS[:1], GREEDY, logprobs=True)[0]
    assert generation.token_logprobs and len(generation.token_logprobs) == len(generation.top_logprobs)
    assert all(lp <= 0 for lp in generation.token_logprobs)
    assert generation.token_logprobs == pytest.approx(generation.top_logprobs)  # greedy picks the top token


def test_cache_serves_repeats_and_separates_models(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths[:2], tmp_path)
    a = [g.text for g in pool.generate("m0", PROMPTS, GREEDY)]
    assert pool.stats.made == 3
    again = make_pool(tiny_pool_paths[:2], tmp_path)
    assert [g.text for g in again.generate("m0", PROMPTS, GREEDY)] == a
    assert (again.stats.made, again.stats.cached) == (0, 3)
    assert again.resident() == []  # nothing loaded for a fully cached request
    b = [g.text for g in again.generate("m1", PROMPTS, GREEDY)]
    assert again.stats.made == 3
    assert b != a


def test_system_prompt_is_part_of_the_key_and_copy_is_shared(tiny_pool_paths, tmp_path):
    paths = [tiny_pool_paths[0], tiny_pool_paths[0]]
    pool = make_pool(paths, tmp_path, system_prompts={1: "You are terse."})
    plain = pool.generate("m0", PROMPTS[:1], GREEDY)[0].text
    prompted = pool.generate("m1", PROMPTS[:1], GREEDY)[0].text
    assert pool.stats.made == 2
    assert len(pool.resident()) == 1
    assert plain != prompted


def test_lru_eviction_keeps_at_most_the_cap(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths, tmp_path, cache=False, max_resident=1)
    for name in pool.names:
        pool.generate(name, PROMPTS[:1], GREEDY)
        assert pool.resident() == [pool.resolved_path(name)]


def test_identity_tracks_weight_files(tiny_pool_paths, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_pool_paths[0], copy)
    before = model_identity(str(copy), "float32")
    weights = next(copy.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert model_identity(str(copy), "float32") != before
    assert model_identity(str(copy), "bfloat16") != model_identity(str(copy), "float32")


def test_system_prompt_folds_into_user_turn_when_template_refuses_it():
    from moco_core.backends.hf import render_prompt

    class NoSystemRole:
        chat_template = "x"

        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            if any(m["role"] == "system" for m in messages):
                raise ValueError("System role not supported")
            return "|".join(m["content"] for m in messages)

    assert render_prompt(NoSystemRole(), "question", "be brief") == "be brief\n\nquestion"
    assert render_prompt(NoSystemRole(), "question", None) == "question"


def test_models_shipped_generation_defaults_are_ignored(tiny_pool_paths, tmp_path):
    import shutil

    from transformers import GenerationConfig

    penalised = tmp_path / "penalised"
    shutil.copytree(tiny_pool_paths[0], penalised)
    config = GenerationConfig.from_pretrained(penalised)
    config.repetition_penalty = 3.0
    config.no_repeat_ngram_size = 1
    config.save_pretrained(penalised)
    plain = make_pool([tiny_pool_paths[0]], tmp_path, cache=False).generate("m0", PROMPTS, GREEDY)
    shipped = make_pool([penalised], tmp_path, cache=False).generate("m0", PROMPTS, GREEDY)
    assert [g.text for g in shipped] == [g.text for g in plain]


def test_pool_members_with_the_same_weights_sample_the_same_text(tiny_pool_paths, tmp_path):
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(tiny_pool_paths[0], twin)
    pool = make_pool([tiny_pool_paths[0], twin], tmp_path, cache=False)
    prompts = [f"question number {i}" for i in range(6)]
    first = [g.text for g in pool.generate("m0", prompts, SAMPLED)]
    second = [g.text for g in pool.generate("m1", prompts, SAMPLED)]
    assert first == second  # streams come from content, not from the folder's path


def test_plain_prompts_get_the_tokenizers_special_tokens():
    from moco_core.backends.hf import adds_special_tokens

    class Templated:
        chat_template = "{{ messages }}"

    class Plain:
        chat_template = None

    assert adds_special_tokens(Plain()) and not adds_special_tokens(Templated())


def test_identity_tracks_the_chat_template_file(tiny_pool_paths, tmp_path):
    import shutil

    copy = tmp_path / "templated"
    shutil.copytree(tiny_pool_paths[0], copy)
    (copy / "chat_template.jinja").write_text("{{ messages }}")
    before = model_identity(str(copy), "float32")
    (copy / "chat_template.jinja").write_text("{{ messages }} changed")
    assert model_identity(str(copy), "float32") != before


def test_sampled_logprobs_are_those_of_the_sampled_tokens(tiny_pool_paths, tmp_path):
    pool = make_pool(tiny_pool_paths[:1], tmp_path, cache=False)
    generations = pool.generate("m0", [f"sample {i}" for i in range(4)], SAMPLED, logprobs=True)
    chosen = [lp for g in generations for lp in g.token_logprobs]
    top = [lp for g in generations for lp in g.top_logprobs]
    assert all(c <= t + 1e-6 for c, t in zip(chosen, top, strict=True))
    assert any(c < t - 1e-3 for c, t in zip(chosen, top, strict=True))  # temperature 1 picks non-top tokens
