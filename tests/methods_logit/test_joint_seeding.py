"""One seeding and caching rule for joint decoding and single models: sampled fusion with all
weight on one member is that member's own sample, and joint keys carry the decoding version."""

from __future__ import annotations

from pathlib import Path

import pytest

from moco_core.config import ModelConfig
from moco_core.method import MethodContext
from moco_core.types import Example, GenerationSettings
from moco_methods_logit.logit_fusion import LogitFusion

from .conftest import fusion_context

pytestmark = pytest.mark.slow

SAMPLED = GenerationSettings(max_new_tokens=8, temperature=0.7, top_p=0.95, seed=5)
GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=5)
QUESTIONS = ["What is 2 + 3?", "Which model is good at math?", "Put the answer in a box.", "the of and"]
EXAMPLES = [
    Example(index=i, id=str(i), question=q, answer="", task_type="open", prompt=q) for i, q in enumerate(QUESTIONS)
]


def context(paths: list[Path], cache: Path, settings: GenerationSettings, **params: object) -> MethodContext:
    members = [
        ModelConfig(name="m0", path=str(paths[0]), system_prompt="You are a careful assistant."),
        ModelConfig(name="m1", path=str(paths[1])),
    ]
    return fusion_context(members, cache, settings, EXAMPLES, 3, **params)


def fused(ctx: MethodContext) -> list[str]:
    return [p.output for p in LogitFusion(ctx).predict(EXAMPLES)]


@pytest.mark.parametrize("space", ["prob", "logit"])
def test_sampled_fusion_with_all_weight_on_one_member_is_its_own_sample(tiny_pool_paths, tmp_path, space):
    paths = tiny_pool_paths[:2]
    for weights, member in (([1.0, 0.0], "m0"), ([0.0, 1.0], "m1")):
        ctx = context(paths, tmp_path / f"{member}.sqlite", SAMPLED, weights=weights, space=space)
        alone = [g.text for g in ctx.pool.generate(member, QUESTIONS, SAMPLED)]
        assert fused(ctx) == alone
        assert alone != [g.text for g in ctx.pool.generate(member, QUESTIONS, GREEDY)]  # it really sampled


def test_sampled_union_fusion_across_tokenizers_is_the_members_own_sample(
    tiny_pool_paths, other_tokenizer_model, tmp_path
):
    paths = [other_tokenizer_model, tiny_pool_paths[0]]
    for weights, member in (([1.0, 0.0], "m0"), ([0.0, 1.0], "m1")):
        ctx = context(paths, tmp_path / f"union-{member}.sqlite", SAMPLED, weights=weights, vocabulary="union")
        alone = [g.text for g in ctx.pool.generate(member, QUESTIONS, SAMPLED)]
        assert fused(ctx) == alone
        assert any(alone)


def test_joint_cache_keys_carry_the_decoding_version(tiny_pool_paths, tmp_path, monkeypatch):
    import moco_methods_logit.joint as joint

    cache = tmp_path / "cache.sqlite"
    first = context(tiny_pool_paths[:2], cache, SAMPLED)
    outputs = fused(first)
    assert first.pool.stats.made == len(QUESTIONS)
    again = context(tiny_pool_paths[:2], cache, SAMPLED)
    assert fused(again) == outputs
    assert (again.pool.stats.made, again.pool.stats.cached) == (0, len(QUESTIONS))
    monkeypatch.setattr(joint, "DECODING_VERSION", joint.DECODING_VERSION + 1)
    bumped = context(tiny_pool_paths[:2], cache, SAMPLED)
    assert fused(bumped) == outputs  # decoded afresh, the same way
    assert (bumped.pool.stats.made, bumped.pool.stats.cached) == (len(QUESTIONS), 0)


def test_sampled_contrast_without_strength_is_the_dev_best_members_own_sample(tiny_pool_paths, tmp_path):
    from moco_methods_logit.logit_contrastive import LogitContrastive
    from moco_methods_logit.params import LogitContrastiveParams

    ctx = context(tiny_pool_paths[:2], tmp_path / "contrast.sqlite", SAMPLED)
    ctx.params = LogitContrastiveParams(alpha=0.0)
    ctx._dev_scores = {"m0": 0.1, "m1": 0.9}
    method = LogitContrastive(ctx)
    method.prepare()
    assert [p.output for p in method.predict(EXAMPLES)] == [g.text for g in ctx.pool.generate("m1", QUESTIONS, SAMPLED)]
