"""logit_contrastive: the contrast on constructed logits, ranking on dev, checks and a CLI run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.registry import ScorerSpec
from moco_core.types import Dataset, Example, GenerationSettings
from moco_methods_logit.logit_contrastive import LogitContrastive, contrast
from moco_methods_logit.params import LogitContrastiveParams

GREEDY = GenerationSettings(max_new_tokens=5, temperature=0.0, top_p=1.0, seed=0)
QUESTIONS = ["What is 2 + 3?", "Put the answer in a box."]
EXAMPLES = [
    Example(index=i, id=str(i), question=q, answer="", task_type="open", prompt=q) for i, q in enumerate(QUESTIONS)
]


def log_probs_of(*logits: list[float]) -> list[torch.Tensor]:
    return [torch.log_softmax(torch.tensor([row], dtype=torch.float64), dim=-1) for row in logits]


def test_logit_space_matches_the_hand_computed_contrast():
    anchor, bottom = [2.0, 1.0, 0.0], [0.0, 1.0, 3.0]
    # s_1 + 0.5 (s_1 - s_B) = [2 + 1, 1 + 0, 0 - 1.5]
    expected = torch.softmax(torch.tensor([3.0, 1.0, -1.5], dtype=torch.float64), dim=-1)
    result = contrast(log_probs_of(anchor, bottom), 1, 1, 0.5, "logit").exp()[0]
    torch.testing.assert_close(result, expected)


def test_two_on_each_side_in_logit_space():
    rows = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    # s_1 + 0.25 (s_1 + s_2 - s_3 - s_4) = [1, 0, 0] + 0.25 [0, 1, -1]
    expected = torch.softmax(torch.tensor([1.0, 0.25, -0.25], dtype=torch.float64), dim=-1)
    torch.testing.assert_close(contrast(log_probs_of(*rows), 2, 2, 0.25, "logit").exp()[0], expected)


def test_prob_space_clips_negatives_and_renormalises():
    anchor = torch.tensor([[0.7, 0.2, 0.1]], dtype=torch.float64)
    bottom = torch.tensor([[0.1, 0.3, 0.6]], dtype=torch.float64)
    # 0.7 + 0.5 (0.7 - 0.1) = 1.0; 0.2 + 0.5 (0.2 - 0.3) = 0.15; 0.1 + 0.5 (0.1 - 0.6) < 0 -> 0
    expected = torch.tensor([1.0 / 1.15, 0.15 / 1.15, 0.0], dtype=torch.float64)
    result = contrast([anchor.log(), bottom.log()], 1, 1, 0.5, "prob").exp()[0]
    torch.testing.assert_close(result, expected)


def make_context(paths: list[Path], tmp_path: Path, dev_scores: dict[str, float], **params) -> MethodContext:
    pool = ModelPool(
        [ModelConfig(name=name, path=str(p)) for name, p in zip("abc", paths, strict=False)],
        hardware=HardwareConfig(device="cpu", dtype="float32"),
        batch_size=4,
        cache=GenerationCache(tmp_path / "g.sqlite"),
        backends=get_registry().backends,
        hook=get_plugin_manager().hook,
    )
    ctx = MethodContext(
        pool=pool,
        dataset=Dataset(name="tiny", task_type="open", dev=EXAMPLES, test=EXAMPLES),
        params=LogitContrastiveParams(**params),
        settings=GREEDY,
        scorer=ScorerSpec(task_type="open", prompt=lambda e: e.question, score=lambda ex, out, options=None: []),
        hook=get_plugin_manager().hook,
        work_dir=tmp_path,
    )
    ctx._dev_scores = dev_scores
    return ctx


def test_k_above_half_the_pool_is_refused_before_loading(tiny_pool_paths, tmp_path):
    ctx = make_context(tiny_pool_paths, tmp_path, {}, k=2)
    with pytest.raises(MocoError, match=r"params.k: at most half the pool \(1 of 3 models\), got 2"):
        LogitContrastive(ctx)
    assert ctx.pool.resident() == []


@pytest.mark.slow
def test_ranks_on_dev_and_alpha_zero_is_the_dev_best_alone(tiny_pool_paths, tmp_path):
    ctx = make_context(tiny_pool_paths, tmp_path, {"a": 0.5, "b": 0.9, "c": 0.5}, alpha=0.0)
    method = LogitContrastive(ctx)
    method.prepare()
    assert (ctx.metrics["contrast_top"], ctx.metrics["contrast_bottom"]) == (["b"], ["c"])
    alone = [g.text for g in ctx.pool.generate("b", QUESTIONS, GREEDY)]
    assert [p.output for p in method.predict(EXAMPLES)] == alone
    ctx = make_context(tiny_pool_paths, tmp_path, {"a": 0.5, "b": 0.9, "c": 0.5}, alpha=1.0)
    contrasted = LogitContrastive(ctx)
    contrasted.prepare()
    outputs = [p.output for p in contrasted.predict(EXAMPLES)]
    assert outputs != alone
    assert ctx.pool.resident() == [str(tiny_pool_paths[1]), str(tiny_pool_paths[2])]


@pytest.mark.slow
def test_runs_through_the_cli(tiny_pool_paths, tmp_path, fresh_cache_dir):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    item = {"question": "Which is 2?", "choices": {"A": "1", "B": "2"}, "answer": "B"}
    data = {"name": "t", "task_type": "multiple_choice", "dev": [{"id": "d", **item}], "test": [{"id": "t", **item}]}
    (tmp_path / "data.json").write_text(json.dumps(data))
    body = {
        "method": "logit_contrastive",
        "params": {"k": 1, "alpha": 0.2, "space": "prob"},
        "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths)],
        "dataset": {"path": str(tmp_path / "data.json")},
        "generation": {"max_new_tokens": 4, "temperature": 0.7, "seed": 1, "batch_size": 4},
        "hardware": {"device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(body))
    from typer.testing import CliRunner

    from moco_core.cli import app

    result = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"]["count"] == 1
    assert len(metrics["contrast_top"]) == len(metrics["contrast_bottom"]) == 1
