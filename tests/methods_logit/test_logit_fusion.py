"""logit_fusion on tiny models: weights, parameter checks, registration and the joint cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.registry import ScorerSpec
from moco_core.types import Dataset, Example, GenerationSettings
from moco_methods_logit.logit_fusion import LogitFusion, fusion_weights
from moco_methods_logit.params import LogitFusionParams

pytestmark = pytest.mark.slow

GREEDY = GenerationSettings(max_new_tokens=6, temperature=0.0, top_p=1.0, seed=0)
QUESTIONS = ["What is 2 + 3?", "Which model is good at math, science and history?", "Put the answer in a box."]
EXAMPLES = [
    Example(index=i, id=str(i), question=q, answer="", task_type="open", prompt=q) for i, q in enumerate(QUESTIONS)
]
SCORER = ScorerSpec(task_type="open", prompt=lambda e: e.question, score=lambda ex, out, options=None: [0.0] * len(ex))


def make_pool(paths: list[Path], cache: GenerationCache | None = None, **hardware: object) -> ModelPool:
    members = [
        ModelConfig(name="a", path=str(paths[0]), system_prompt="You are a helpful assistant."),
        ModelConfig(name="b", path=str(paths[1])),
    ]
    return ModelPool(
        members,
        hardware=HardwareConfig(device="cpu", dtype="float32", **hardware),
        batch_size=4,
        cache=cache,
        backends=get_registry().backends,
        hook=get_plugin_manager().hook,
    )


def make_context(pool: ModelPool, tmp_path: Path, **params: object) -> MethodContext:
    return MethodContext(
        pool=pool,
        dataset=Dataset(name="tiny", task_type="open", dev=[], test=EXAMPLES),
        params=LogitFusionParams(**params),
        settings=GREEDY,
        scorer=SCORER,
        hook=get_plugin_manager().hook,
        work_dir=tmp_path,
    )


def test_registered_as_logit_method() -> None:
    spec = get_registry().methods["logit_fusion"]
    assert spec.level == "logit"
    assert spec.requirements.min_models == 2  # one tokenizer is checked by LogitFusion.check unless union
    assert spec.load() is LogitFusion


@pytest.mark.parametrize("space", ["prob", "logit"])
def test_weight_on_one_model_reproduces_it(tiny_pool_paths, tmp_path, space) -> None:
    pool = make_pool(tiny_pool_paths)
    fused = LogitFusion(make_context(pool, tmp_path, weights=[1.0, 0.0], space=space)).predict(EXAMPLES)
    alone = pool.generate("a", QUESTIONS, GREEDY)
    assert [p.output for p in fused] == [g.text for g in alone]
    assert any(p.output for p in fused)
    assert fused[0].extras == {"weights": [1.0, 0.0]}
    other = LogitFusion(make_context(pool, tmp_path, weights=[0.0, 2.0], space=space)).predict(EXAMPLES)
    assert [p.output for p in other] == [g.text for g in pool.generate("b", QUESTIONS, GREEDY)]


def test_uniform_fusion_differs_from_members(tiny_pool_paths, tmp_path) -> None:
    pool = make_pool(tiny_pool_paths)
    fused = [p.output for p in LogitFusion(make_context(pool, tmp_path)).predict(EXAMPLES)]
    assert fused != [g.text for g in pool.generate("a", QUESTIONS, GREEDY)]
    assert fused != [g.text for g in pool.generate("b", QUESTIONS, GREEDY)]


def test_parameter_checks(tiny_pool_paths, tmp_path) -> None:
    with pytest.raises(ValidationError):
        LogitFusionParams(weights=[1.0, -0.5])
    with pytest.raises(ValidationError):
        LogitFusionParams(space="probability")
    with pytest.raises(ValidationError):
        LogitFusionParams(temperature=1.0)
    pool = make_pool(tiny_pool_paths)
    with pytest.raises(MocoError, match=r"params\.weights: expected 2 weights"):
        LogitFusion(make_context(pool, tmp_path, weights=[1.0, 1.0, 1.0]))
    with pytest.raises(MocoError, match=r"params\.weights: at least one"):
        LogitFusion(make_context(pool, tmp_path, weights=[0.0, 0.0]))
    assert fusion_weights(None, 4) == [0.25] * 4
    assert fusion_weights([1, 3], 2) == [0.25, 0.75]


def test_needs_every_model_resident(tiny_pool_paths, tmp_path) -> None:
    pool = make_pool(tiny_pool_paths, max_resident_models=1)
    with pytest.raises(MocoError, match=r"hardware\.max_resident_models"):
        LogitFusion(make_context(pool, tmp_path)).predict(EXAMPLES)


def test_second_run_is_served_from_cache(tiny_pool_paths, tmp_path) -> None:
    cache = GenerationCache(tmp_path / "cache.sqlite")
    first_pool = make_pool(tiny_pool_paths, cache)
    examples = [*EXAMPLES, EXAMPLES[0]]
    first = LogitFusion(make_context(first_pool, tmp_path, weights=[2.0, 1.0])).predict(examples)
    assert (first_pool.stats.made, first_pool.stats.cached) == (3, 1)
    assert first[0].output == first[-1].output

    second_pool = make_pool(tiny_pool_paths, cache)
    second = LogitFusion(make_context(second_pool, tmp_path, weights=[2.0, 1.0])).predict(examples)
    assert (second_pool.stats.made, second_pool.stats.cached) == (0, 4)
    assert [p.output for p in second] == [p.output for p in first]
    assert second_pool.resident() == []

    LogitFusion(make_context(second_pool, tmp_path, weights=[1.0, 2.0])).predict(EXAMPLES[:1])
    assert second_pool.stats.made == 1
