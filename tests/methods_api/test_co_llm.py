"""co_llm: the assistant's token is taken exactly where p(defer) > threshold; end to end on tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moco_core import training_run
from moco_core.engines.decoding import DecodeStep
from moco_methods_api.co_llm import DeferHook, step_threshold
from moco_methods_api.co_llm_training import HEAD_FILE, HEAD_KIND, MARGINAL_KIND


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


MODELS = ["gen", "asst"]
PARAMS = {"epochs": 1, "threshold": 0.3}
GENERATION = {"max_new_tokens": 8, "temperature": 0.0}


def co_llm_run(api, tiny_pool_paths, params: dict, out: str):
    models = [{"name": n, "path": str(p)} for n, p in zip(MODELS, tiny_pool_paths, strict=False)]
    data = api.data([(f"dev {i}", "The answer is 4") for i in range(3)], [(f"test {i}", "x") for i in range(3)])
    return api.run("co_llm", models, data, params, out=out, generation=GENERATION)


@pytest.mark.slow
@pytest.mark.parametrize("finetune", [False, True])
def test_co_llm_trains_through_the_engine_and_reuses_its_jobs(api, tiny_pool_paths, finetune, trainer_calls):
    kinds = [HEAD_KIND, MARGINAL_KIND] if finetune else [HEAD_KIND]
    result, run = co_llm_run(api, tiny_pool_paths, {**PARAMS, "finetune": finetune}, "first")
    assert result.exit_code == 0, result.output
    assert trainer_calls == kinds
    lines = api.predictions(run)
    for line in lines:
        assert all(0 <= step < 8 for step in line["deferred_at"])
        assert line["tokens_by_model"]["asst"] == len(line["deferred_at"])
    summary = api.metrics(run)
    assert set(summary["usage"]["generated_tokens"]) == {"gen", "asst"}
    blocks = summary["training"]
    assert [b["kind"] for b in blocks] == kinds and all(b["steps"] > 0 for b in blocks)
    assert blocks[0]["final_loss"] < blocks[0]["first_loss"]  # the head's BCE goes down
    assert summary["defer_head"]["folder"] == blocks[-1]["output"]
    assert (run / "work" / "training" / f"{Path(blocks[0]['output']).name}.jsonl").is_file()
    folder = Path(blocks[-1]["output"])
    assert (folder / HEAD_FILE).is_file() and (folder / "config.json").is_file() == finetune

    again, rerun = co_llm_run(api, tiny_pool_paths, {**PARAMS, "finetune": finetune}, "again")
    assert again.exit_code == 0, again.output
    assert trainer_calls == kinds  # both jobs were found finished by their recipe
    second = api.metrics(rerun)
    assert second["generations"]["made"] == 0
    assert [b["output"] for b in second["training"]] == [b["output"] for b in blocks]
    assert api.predictions(rerun) == lines


@pytest.mark.slow
def test_a_killed_co_llm_job_is_not_served(api, tiny_pool_paths, monkeypatch, trainer_calls):
    def killed(job, hyper, recipe, base, out):
        (out / HEAD_FILE).write_bytes(b"half")
        raise RuntimeError("killed mid-training")

    with monkeypatch.context() as patch:
        patch.setattr(training_run, "run_trainer", killed)
        result, _ = co_llm_run(api, tiny_pool_paths, {**PARAMS, "finetune": False}, "killed")
    assert result.exit_code != 0
    result, run = co_llm_run(api, tiny_pool_paths, {**PARAMS, "finetune": False}, "after")
    assert result.exit_code == 0, result.output
    assert trainer_calls == [HEAD_KIND]
    folder = Path(api.metrics(run)["defer_head"]["folder"])
    assert (folder / HEAD_FILE).read_bytes() != b"half" and not list(folder.parent.glob("*.partial-*"))


def test_co_llm_refuses_three_models_before_loading(api, tiny_pool_paths):
    models = [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(tiny_pool_paths)]
    result, _ = api.run("co_llm", models, api.data([], [("q", "x")]))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def loss_inputs(tiny_pool_paths):
    from transformers import AutoModelForCausalLM

    from moco_methods_api.co_llm_trainer import DeferModel, collate

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_pool_paths[0], dtype=torch.float32)
    head = {"w": torch.randn(model.config.hidden_size) * 0.1, "b": torch.tensor([0.3])}
    rows = [
        {"input_ids": [5, 6, 7, 8, 9], "start": 3, "width": 40, "assistant_logprobs": [-0.5, -2.0],
         "defer_labels": [1, 0]},
        {"input_ids": [5, 6, 7], "start": 1, "width": 40, "assistant_logprobs": [-1.0, -0.1],
         "defer_labels": [0, 1]},
    ]  # fmt: skip
    return DeferModel(model, head, train_generator=True), rows, collate(rows, pad_id=0, max_length=64)


def per_token(model, rows):
    """(gold log p_gen over the first ``width`` logits, defer logit, assistant log-prob, label) per gold token."""
    out = []
    for row in rows:
        ids, start = row["input_ids"], row["start"]
        result = model.generator(input_ids=torch.tensor([ids]), output_hidden_states=True)
        for j, token in enumerate(ids[start:]):
            position = start - 1 + j
            gen = torch.log_softmax(result.logits[0, position, : row["width"]], -1)[token]
            defer = result.hidden_states[-1][0, position] @ model.w + model.b
            out.append((gen, defer.squeeze(), row["assistant_logprobs"][j], row["defer_labels"][j]))
    return out


def test_the_marginal_loss_is_the_mean_negative_log_of_the_mixture(tiny_pool_paths):
    from moco_methods_api.co_llm_trainer import MarginalTrainer

    model, rows, batch = loss_inputs(tiny_pool_paths)
    loss = MarginalTrainer.compute_loss(None, model, batch)
    terms = []
    for gen, defer, asst, _ in per_token(model, rows):
        p = torch.sigmoid(defer)
        terms.append(-torch.log((1 - p) * gen.exp() + p * torch.tensor(asst).exp()))
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)
    loss.backward()
    assert model.w.grad is not None and model.generator.get_input_embeddings().weight.grad is not None


def test_the_head_loss_is_bce_with_positive_weight_8_on_a_frozen_generator(tiny_pool_paths):
    from moco_methods_api.co_llm_trainer import DeferHeadTrainer, DeferModel

    model, rows, batch = loss_inputs(tiny_pool_paths)
    frozen = DeferModel(model.generator, {"w": model.w.detach(), "b": model.b.detach()}, train_generator=False)
    loss = DeferHeadTrainer.compute_loss(None, frozen.train(), batch)
    terms = [
        -(8.0 * label * torch.nn.functional.logsigmoid(d) + (1 - label) * torch.nn.functional.logsigmoid(-d))
        for _, d, _, label in per_token(frozen, rows)
    ]
    assert torch.allclose(loss, torch.stack(terms).mean(), atol=1e-5)
    loss.backward()
    assert frozen.w.grad is not None and not frozen.generator.training
    assert all(p.grad is None for p in frozen.generator.parameters())
