"""ExPO, model swarms and DARE-TIES: exact weights of their candidates and runs through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from moco_core.engines.pso import PSOParams
from moco_core.errors import MocoError
from moco_core.plugins import get_registry
from moco_core.weight_space import LinearSpace, MergekitSpace
from moco_methods_weight.dare_ties import DareTies
from moco_methods_weight.expo import Expo
from moco_methods_weight.model_swarms import ModelSwarms
from moco_methods_weight.params import DareTiesParams, ExpoParams, ModelSwarmsParams

from .conftest import make_context, mc_file, moco_run, run_config, weights_of

pytestmark = pytest.mark.slow
MEMBERS = ("base", "m0", "m1", "m2")


def scored_by_candidate(ctx, name: str, score) -> None:
    """Make dev scores a function of the weights of the candidate answering through ``name``."""
    ctx.score = lambda examples, outputs: [score(ctx.pool.identity(name)["recipe"]["weights"])] * len(outputs)


def test_expo_alpha_zero_is_the_top_k_average_and_alpha_moves_away_from_the_bottom(family, tmp_path, fresh_cache_dir):
    members = {k: family[k] for k in MEMBERS}
    w = {k: weights_of(p) for k, p in members.items()}
    ranking_scores = {"base": 0.1, "m0": 0.9, "m1": 0.5, "m2": 0.7}
    results = {}
    for alpha in (0.0, 0.5):
        ctx = make_context(members, tmp_path / str(alpha), ExpoParams(k=2, alpha=alpha))
        ctx._dev_scores = ranking_scores
        method = Expo(ctx)
        method.prepare()
        assert (ctx.metrics["expo_top"], ctx.metrics["expo_bottom"]) == (["m0", "m2"], ["m1", "base"])
        results[alpha] = weights_of(ctx.metrics["model_path"])
    name = "model.layers.0.mlp.up_proj.weight"
    top = (w["m0"][name] + w["m2"][name]) / 2
    bottom = (w["m1"][name] + w["base"][name]) / 2
    torch.testing.assert_close(results[0.0][name], top)
    torch.testing.assert_close(results[0.5][name], top + 0.5 * (top - bottom))
    assert torch.dist(results[0.5][name], bottom) > torch.dist(top, bottom)


def test_expo_alpha_search_keeps_the_first_best_alpha(family, tmp_path, fresh_cache_dir):
    members = {k: family[k] for k in ("m0", "m1")}
    ctx = make_context(members, tmp_path, ExpoParams(alpha_search=[0.1, 0.2, 0.3, 0.4]))
    ctx._dev_scores = {"m0": 0.2, "m1": 0.8}
    scored_by_candidate(ctx, "expo:candidate", lambda weights: 1.0 if weights[0] >= 1.2 else 0.0)
    method = Expo(ctx)
    method.prepare()
    assert ctx.metrics["expo_alpha"] == 0.2
    assert [s for _, s in ctx.metrics["alpha_scores"]] == [0.0, 1.0, 1.0, 1.0]
    assert ctx.metrics["expo_top"] == ["m1"]
    assert "expo:candidate" not in ctx.pool.names
    assert len(method.predict(ctx.dataset.test)) == 2


def test_model_swarms_best_never_worsens_and_candidates_are_the_pso_update(family, tmp_path, fresh_cache_dir):
    members = {k: family[k] for k in ("m0", "m1", "m2")}
    target = np.array([0.2, 0.5, 0.3])
    params = ModelSwarmsParams(pso=PSOParams(max_iterations=3, patience=3))
    ctx = make_context(members, tmp_path, params)
    scored_by_candidate(
        ctx, "model_swarms:candidate", lambda weights: -float(np.sum((np.array(weights) - target) ** 2))
    )
    method = ModelSwarms(ctx)
    method.prepare()
    result = method.result
    bests = ctx.metrics["swarm_history"]
    assert bests == sorted(bests) and bests[-1] > bests[0]
    space = LinearSpace([str(p) for p in members.values()], "float32")
    name = "model.layers.1.self_attn.o_proj.weight"

    def tensor(vector) -> torch.Tensor:
        return space.materialize(vector)[name].clone()

    for move in result.moves[:: max(1, len(result.moves) // 4)]:
        w, c, s, r = move.coefficients
        x = tensor(move.position)
        velocity = w * tensor(move.velocity) + c * (tensor(move.personal_best) - x) + s * (tensor(move.global_best) - x)
        velocity = velocity - r * (tensor(move.global_worst) - x)
        torch.testing.assert_close(tensor(move.new_position), x + move.step_length * velocity, rtol=1e-4, atol=1e-5)
    final = weights_of(ctx.metrics["model_path"])
    torch.testing.assert_close(final[name], tensor(result.best))
    assert ctx.metrics["swarm_best_dev_score"] == max(bests)
    assert ctx.metrics["search_evaluations"] == result.evaluations


def test_model_swarms_moves_lora_adapters(adapters, tmp_path, fresh_cache_dir):
    members = {"a0": adapters[0], "a1": adapters[1]}
    params = ModelSwarmsParams(pso=PSOParams(max_iterations=1))
    ctx = make_context(members, tmp_path, params)
    scored_by_candidate(ctx, "model_swarms:candidate", lambda weights: -abs(weights[0] - 0.7))
    method = ModelSwarms(ctx)
    assert method.lora
    method.prepare()
    recipe = json.loads((tmp_path.parent / ctx.metrics["model_path"] / "moco_identity.json").read_text())
    assert recipe["kind"] == "weight_search:lora" and recipe["base"] is not None
    assert len(method.predict(ctx.dataset.test)) == 2


def test_dare_ties_needs_a_base_and_refuses_mismatched_shapes(family, tmp_path):
    with pytest.raises(ValidationError):
        DareTiesParams()
    ctx = make_context({"m0": family["m0"], "m1": family["m1"]}, tmp_path, DareTiesParams(base_model=str(tmp_path)))
    with pytest.raises(MocoError, match=r"^params.base_model: .*not a model folder"):
        DareTies(ctx)


def test_dare_ties_uniform_and_searched(family, tmp_path, fresh_cache_dir):
    members = {k: family[k] for k in MEMBERS}
    ctx = make_context(members, tmp_path / "u", DareTiesParams(base_model="base"))
    uniform = DareTies(ctx)
    uniform.prepare()
    assert ctx.metrics["dare_ties_weights"] == pytest.approx([1 / 3] * 3)
    assert (
        json.loads((tmp_path.parent / ctx.metrics["model_path"] / "moco_identity.json").read_text())["kind"] == "merge"
    )

    pso = PSOParams(population=3, max_iterations=2, patience=2)
    ctx = make_context(members, tmp_path / "s", DareTiesParams(base_model="base", weights="search", pso=pso))
    scored_by_candidate(ctx, "dare_ties:candidate", lambda weights: weights[2])
    searched = DareTies(ctx)
    searched.prepare()
    weights = ctx.metrics["dare_ties_weights"]
    assert sum(weights) == pytest.approx(1.0)
    assert ctx.metrics["search_best_dev_score"] == pytest.approx(weights[2])
    history = ctx.metrics["search_history"]
    assert history == sorted(history)
    space = MergekitSpace(
        [str(family[k]) for k in ("m0", "m1", "m2")], str(family["base"]), "dare_ties", {"density": 0.5}, "float32"
    )
    expected = space.materialize(weights)
    final = weights_of(ctx.metrics["model_path"])
    assert all(torch.equal(final[k], expected[k]) for k in final)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("expo", {"alpha_search": [0.1, 0.5]}),
        ("model_swarms", {"pso": {"max_iterations": 1}}),
        ("dare_ties", {"base_model": "base", "weights": "search", "pso": {"population": 2, "max_iterations": 1}}),
    ],
)
def test_searches_run_through_the_cli(family, tmp_path, fresh_cache_dir, method, params):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    models = [(k, family[k]) for k in MEMBERS]
    path = run_config(tmp_path, models, method, params, mc_file(tmp_path))
    code, output = moco_run(path)
    assert code == 0, output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"]["count"] == 2
    assert metrics["search_evaluations"] >= 1
