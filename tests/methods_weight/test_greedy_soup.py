"""Greedy soup on tiny models, with dev scores scripted per pool member to pin accept/reject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.method import MethodContext
from moco_core.models import IDENTITY_FILE
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.registry import NoParams, ScorerSpec
from moco_core.types import Dataset, Example, GenerationSettings
from moco_methods_weight.greedy_soup import GreedySoup, soup_name, uniform_weights

pytestmark = pytest.mark.slow
CANDIDATE = "greedy_soup:candidate"


def _examples(count: int) -> list[Example]:
    return [
        Example(index=i, id=f"q{i}", question=f"what is {i} + 1?", answer=str(i + 1), task_type="toy", prompt=f"{i}+1=")
        for i in range(count)
    ]


def _context(paths: list[Path], work_dir: Path, dev_scores: dict[str, float]) -> tuple[MethodContext, list[str]]:
    """A hand-built context whose score is ``dev_scores[the model that just answered]``."""
    pm = get_plugin_manager()
    pool = ModelPool(
        [ModelConfig(name=name, path=str(path)) for name, path in zip("abc", paths, strict=True)],
        hardware=HardwareConfig(device="cpu", dtype="float32"),
        batch_size=4,
        cache=GenerationCache(work_dir / "generations.sqlite"),
        backends=get_registry().backends,
        hook=pm.hook,
    )
    scorer = ScorerSpec(
        task_type="toy", prompt=lambda e: e.prompt, score=lambda examples, outputs, options=None: [0.0] * len(outputs)
    )
    ctx = MethodContext(
        pool=pool,
        dataset=Dataset(name="toy", task_type="toy", dev=_examples(3), test=_examples(2)),
        params=NoParams(),
        settings=GenerationSettings(max_new_tokens=4, temperature=0.0),
        scorer=scorer,
        hook=pm.hook,
        work_dir=work_dir,
    )
    answered: list[str] = []
    real_answer = ctx.answer

    def answer(name, examples, logprobs=False):
        answered.append(name)
        return real_answer(name, examples, logprobs)

    def score(examples, outputs):
        name = answered[-1]
        if name == CANDIDATE:  # the in-memory soup being tried: named by the members it averages
            vector = ctx.method.search.slot.vector
            name = frozenset(n for n, w in zip("abc", vector, strict=True) if w > 0)
        return [scores[name]] * len(outputs)

    scores = {(frozenset(k[5:-1].split("+")) if k.startswith("soup(") else k): v for k, v in dev_scores.items()}
    ctx.answer = answer
    ctx.score = score
    return ctx, answered


def test_registered_with_weight_level_requirements():
    spec = get_registry().methods["greedy_soup"]
    assert spec.level == "weight"
    assert spec.requirements.same_architecture and spec.requirements.same_tokenizer
    assert spec.requirements.min_models == 2
    assert spec.load() is GreedySoup


def test_keeps_a_candidate_only_when_dev_does_not_drop(tiny_pool_paths, tmp_path, fresh_cache_dir):
    kept, dropped = soup_name(["b", "a"]), soup_name(["b", "a", "c"])
    scores = {"a": 0.5, "b": 0.75, "c": 0.25, kept: 0.75, dropped: 0.625}
    ctx, answered = _context(tiny_pool_paths, tmp_path, scores)
    method = ctx.method = GreedySoup(ctx)

    method.prepare()
    predictions = method.predict(ctx.dataset.test)

    assert method.soup == ["b", "a"]
    assert ctx.metrics["soup"] == ["b", "a"]
    assert ctx.metrics["soup_dev_score"] == 0.75
    assert [(h["candidate"], h["dev_score"], h["accepted"]) for h in ctx.metrics["soup_history"]] == [
        ("b", 0.75, True),
        ("a", 0.75, True),
        ("c", 0.625, False),
    ]
    assert ctx.pool.names == ["a", "b", "c", kept]
    assert answered[-1] == kept
    assert len(predictions) == 2
    assert all(p.extras == {"soup": ["b", "a"]} for p in predictions)

    folder = Path(ctx.metrics["soup_model_path"])
    recipe = json.loads((folder / IDENTITY_FILE).read_text())
    assert recipe["search"]["method"] == "greedy_soup"
    assert recipe["weights"] == uniform_weights(["a", "b", "c"], ["b", "a"])
    assert folder.parent == fresh_cache_dir / "merges"
    assert not list(folder.parent.glob("*partial*")) and len(list(folder.parent.iterdir())) == 1, "only the final soup"
    soup = load_file(str(folder / "model.safetensors"))
    inputs = [load_file(str(next(Path(p).glob("*.safetensors")))) for p in tiny_pool_paths[:2]]
    for key, tensor in soup.items():
        assert torch.allclose(tensor, (inputs[0][key] + inputs[1][key]) / 2, atol=1e-6), key


def test_a_soup_of_one_answers_with_the_best_model(tiny_pool_paths, tmp_path, fresh_cache_dir):
    scores = {"a": 0.25, "b": 0.75, "c": 0.5, soup_name(["b", "c"]): 0.5, soup_name(["b", "a"]): 0.125}
    ctx, answered = _context(tiny_pool_paths, tmp_path, scores)
    method = ctx.method = GreedySoup(ctx)

    method.prepare()
    predictions = method.predict(ctx.dataset.test)

    assert method.soup == ["b"]
    assert ctx.metrics["soup_model"] == "b"
    assert ctx.metrics["soup_model_path"] == str(tiny_pool_paths[1])
    assert ctx.pool.names == ["a", "b", "c"]
    assert answered[-1] == "b"
    assert [p.output for p in predictions] == [g.text for g in ctx.pool.generate("b", ["0+1=", "1+1="], ctx.settings)]
