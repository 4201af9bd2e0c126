"""co_llm: the assistant's token is taken exactly where p(defer) > threshold; end to end on tiny models."""

from __future__ import annotations

import pytest
import torch

from moco_core.engines.decoding import DecodeStep
from moco_methods_api.co_llm import DeferHook, step_threshold


def step(hidden_first: list[float], index: int = 20) -> DecodeStep:
    rows = len(hidden_first)
    hidden = torch.zeros((rows, 4))
    hidden[:, 0] = torch.tensor(hidden_first)
    generator = torch.log_softmax(torch.randn(rows, 6), -1)
    assistant = torch.log_softmax(torch.randn(rows, 6), -1)
    return DecodeStep(
        index, list(range(rows)), [generator, assistant], generator, torch.zeros(rows, dtype=torch.bool), [hidden, None]
    )


def test_defers_exactly_where_p_exceeds_the_threshold():
    w, b = torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0.0])
    hook = DeferHook(w, b, threshold=0.5, warmup="none", strategy="defer")
    s = step([2.0, -2.0, 0.5, -0.1])  # p = 0.88, 0.12, 0.62, 0.475
    out = hook(s)
    generator, assistant = s.log_probs
    for row, defers in enumerate([True, False, True, False]):
        assert torch.equal(out[row], assistant[row] if defers else generator[row])
    assert hook.deferred == {0: [20], 2: [20]}


def test_compose_mixes_by_p_and_warmup_starts_at_one():
    w, b = torch.tensor([0.0, 0.0, 0.0, 0.0]), torch.tensor([0.0])  # p = 0.5 everywhere
    s = step([0.0, 0.0])
    out = DeferHook(w, b, 0.5, "none", "compose")(s)
    expected = torch.log(0.5 * s.log_probs[0].exp() + 0.5 * s.log_probs[1].exp())
    assert torch.allclose(out, expected, atol=1e-6)
    assert step_threshold(0.5, "linear", 0) == 1.0 and step_threshold(0.5, "linear", 15) == 0.5
    assert step_threshold(0.5, "cosine", 5) > step_threshold(0.5, "linear", 5)


@pytest.mark.slow
@pytest.mark.parametrize("finetune", [False, True])
def test_co_llm_runs_on_tiny_models(api, tiny_pool_paths, finetune):
    models = [{"name": "gen", "path": str(tiny_pool_paths[0])}, {"name": "asst", "path": str(tiny_pool_paths[1])}]
    data = api.data([(f"dev {i}", "The answer is 4") for i in range(3)], [(f"test {i}", "x") for i in range(3)])
    params = {"finetune": finetune, "epochs": 1, "threshold": 0.3}
    generation = {"max_new_tokens": 8, "temperature": 0.0}
    result, run = api.run("co_llm", models, data, params, generation=generation)
    assert result.exit_code == 0, result.output
    lines = api.predictions(run)
    for line in lines:
        assert all(0 <= step < 8 for step in line["deferred_at"])
        assert line["tokens_by_model"]["asst"] == len(line["deferred_at"])
    summary = api.metrics(run)
    assert summary["defer_head"]["folder"]
    assert set(summary["usage"]["generated_tokens"]) == {"gen", "asst"}
    again, rerun = api.run("co_llm", models, data, params, out="again", generation=generation)
    assert again.exit_code == 0 and api.metrics(rerun)["generations"]["made"] == 0


def test_co_llm_refuses_three_models_before_loading(api, tiny_pool_paths):
    models = [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths)]
    result, _ = api.run("co_llm", models, api.data([], [("q", "x")]))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
