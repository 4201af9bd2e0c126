"""Fusion across tokenizers through a union vocabulary: same tokenizer = today's fusion; (1, 0) = model 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from moco_core.config import ModelConfig
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.types import Example, GenerationSettings
from moco_methods_logit.logit_fusion import LogitFusion

from .conftest import fusion_context

pytestmark = pytest.mark.slow

GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=0)
SAMPLED = GenerationSettings(max_new_tokens=8, temperature=0.7, top_p=0.9, seed=3)
QUESTIONS = ["What is 2 + 3?", "Which model is good at math?", "Put the answer in a box.", "the of and"]
EXAMPLES = [
    Example(index=i, id=str(i), question=q, answer="", task_type="open", prompt=q) for i, q in enumerate(QUESTIONS)
]


def context(paths: list[Path], tmp_path: Path, settings: GenerationSettings, **params) -> MethodContext:
    members = [ModelConfig(name=f"m{i}", path=str(p)) for i, p in enumerate(paths)]
    return fusion_context(members, tmp_path / "g.sqlite", settings, EXAMPLES, **params)


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED])
def test_on_one_tokenizer_the_union_equals_todays_fusion(tiny_pool_paths, tmp_path, settings):
    shared = LogitFusion(context(tiny_pool_paths[:2], tmp_path / "a", settings)).predict(EXAMPLES)
    union = LogitFusion(context(tiny_pool_paths[:2], tmp_path / "b", settings, vocabulary="union")).predict(EXAMPLES)
    assert [p.output for p in union] == [p.output for p in shared]
    assert any(p.output for p in shared)


def test_across_tokenizers_all_weight_on_one_model_gives_its_own_text(tiny_pool_paths, other_tokenizer_model, tmp_path):
    paths = [tiny_pool_paths[0], other_tokenizer_model]
    for first, order in ((0, paths), (1, paths[::-1])):
        ctx = context(order, tmp_path / str(first), GREEDY, weights=[1.0, 0.0], vocabulary="union")
        fused = [p.output for p in LogitFusion(ctx).predict(EXAMPLES)]
        alone = [g.text for g in ctx.pool.generate("m0", QUESTIONS, GREEDY)]
        assert fused == alone
        assert any(alone)
    # all weight on the second model: the first reads its tokens by re-encoding their text
    ctx = context(paths, tmp_path / "second", GREEDY, weights=[0.0, 1.0], vocabulary="union")
    fused = [p.output for p in LogitFusion(ctx).predict(EXAMPLES)]
    assert fused == [g.text for g in ctx.pool.generate("m1", QUESTIONS, GREEDY)]
    assert any(fused)
    mixed = context(paths, tmp_path / "mix", GREEDY, vocabulary="union")
    outputs = [p.output for p in LogitFusion(mixed).predict(EXAMPLES)]
    assert len(outputs) == len(QUESTIONS) and outputs != fused


def test_shared_vocabulary_refuses_two_tokenizers_and_union_refuses_logit_space(tiny_pool_paths, other_tokenizer_model):
    from moco_methods_logit.logit_fusion import check_vocabulary

    models = [
        ModelConfig(name="a", path=str(tiny_pool_paths[0])),
        ModelConfig(name="b", path=str(other_tokenizer_model)),
    ]
    with pytest.raises(MocoError, match=r"^models\[1\].path: logit_fusion needs the same tokenizer as models\[0\]"):
        check_vocabulary("logit_fusion", models, "shared", "prob")
    with pytest.raises(MocoError, match=r"^params.space: .*union"):
        check_vocabulary("logit_fusion", models, "union", "logit")
    check_vocabulary("logit_fusion", models, "union", "prob")


def test_contrastive_decodes_across_tokenizers(tiny_pool_paths, other_tokenizer_model, tmp_path):
    from moco_methods_logit.logit_contrastive import LogitContrastive
    from moco_methods_logit.params import LogitContrastiveParams

    ctx = context([tiny_pool_paths[0], other_tokenizer_model], tmp_path, GREEDY)
    ctx.params = LogitContrastiveParams(alpha=0.0, space="prob", vocabulary="union")
    ctx._dev_scores = {"m0": 0.2, "m1": 0.8}
    method = LogitContrastive(ctx)
    method.prepare()
    outputs = [p.output for p in method.predict(EXAMPLES)]
    assert outputs == [g.text for g in ctx.pool.generate("m1", QUESTIONS, GREEDY)]
