"""lorahub: nevergrad over adapter weights from 0, the L1 term, the pool requirement, a CLI run."""

from __future__ import annotations

import json

import pytest
import torch

from moco_core.errors import MocoError
from moco_core.plugins import get_registry
from moco_core.weight_space import LoraSpace
from moco_methods_weight.lorahub import Lorahub
from moco_methods_weight.params import LorahubParams

from .conftest import make_context, mc_file, moco_run, run_config, weights_of

pytestmark = pytest.mark.slow


def test_searches_from_zero_within_bounds_and_writes_the_composition(family, adapters, tmp_path, fresh_cache_dir):
    members = {"a0": adapters[0], "a1": adapters[1]}
    params = LorahubParams(budget=12, dev_examples=2, bound=1.0, l1=0.1)
    ctx = make_context(members, tmp_path, params, dev=4)
    seen: list[list[float]] = []
    asked: list[int] = []

    def score(examples, outputs):
        asked.append(len(examples))
        weights = ctx.pool.identity("lorahub:candidate")["recipe"]["weights"]
        seen.append(weights)
        return [max(0.0, 1.0 - abs(weights[0] - 0.6) - abs(weights[1] + 0.3))] * len(outputs)

    ctx.score = score
    method = Lorahub(ctx)
    assert method.base == str(family["base"])
    method.prepare()
    assert seen[0] == [0.0, 0.0]
    assert set(asked) == {2}
    assert all(-1.0 <= w <= 1.0 for weights in seen for w in weights)
    losses = ctx.metrics["lorahub_losses"]
    assert len(losses) == 12 and min(losses) < losses[0]
    weights = [ctx.metrics["lorahub_weights"][n] for n in ("a0", "a1")]
    expected = LoraSpace([str(p) for p in adapters], str(family["base"]), "float32").materialize(weights)
    final = weights_of(ctx.metrics["model_path"])
    name = "model.layers.0.self_attn.q_proj.weight"
    torch.testing.assert_close(final[name], expected[name])
    assert len(method.predict(ctx.dataset.test)) == 2


def test_a_full_model_in_the_pool_is_refused(family, adapters, tmp_path):
    ctx = make_context({"a0": adapters[0], "m0": family["m0"]}, tmp_path, LorahubParams())
    with pytest.raises(MocoError, match=r"^models\[1\] \(m0\): .* is not a LoRA adapter folder"):
        Lorahub(ctx)


def test_runs_through_the_cli(adapters, tmp_path, fresh_cache_dir):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    models = [("a0", adapters[0]), ("a1", adapters[1])]
    path = run_config(tmp_path, models, "lorahub", {"budget": 3, "dev_examples": 2}, mc_file(tmp_path))
    code, output = moco_run(path)
    assert code == 0, output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"]["count"] == 2
    assert set(metrics["lorahub_weights"]) == {"a0", "a1"}


def test_validate_refuses_a_pool_that_is_not_adapters(family, adapters, tmp_path):
    models = [("a0", adapters[0]), ("m0", family["m0"])]
    code, output = moco_run(run_config(tmp_path, models, "lorahub", {}, mc_file(tmp_path)), "validate")
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "models[1] (m0):" in lines[0] and "is not a LoRA adapter folder" in lines[0]
