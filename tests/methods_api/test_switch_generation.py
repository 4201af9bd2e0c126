"""switch_generation on two tiny models with different tokenizers, through ``moco run``."""

from __future__ import annotations

import pytest

from moco_methods_api.switch_generation import parse_model, selector_prompt

pytestmark = pytest.mark.slow

GENERATION = {"max_new_tokens": 8, "temperature": 0.0, "batch_size": 4}


def pool(tiny_pool_paths, other_tokenizer_model) -> list[dict]:
    return [{"name": "a", "path": str(tiny_pool_paths[0])}, {"name": "b", "path": str(other_tokenizer_model)}]


def test_parse_model_and_prompt():
    assert parse_model("I pick Model 2.", 2) == 1
    assert parse_model("Model 3", 2) is None and parse_model("none", 2) is None
    assert "Answer so far:\nabc" in selector_prompt("q", "abc", 2)


def test_given_selector_picks_a_writer_every_patch(api, tiny_pool_paths, other_tokenizer_model):
    data = api.data([], [(f"test question {i}", "x") for i in range(3)])
    params = {"patch_size": 3, "selector_model": str(tiny_pool_paths[1])}
    result, run = api.run(
        "switch_generation", pool(tiny_pool_paths, other_tokenizer_model), data, params, generation=GENERATION
    )
    assert result.exit_code == 0, result.output
    for line in api.predictions(run):
        generated = sum(line["tokens_by_model"].values())
        boundaries = list(range(0, generated + (1 if generated < GENERATION["max_new_tokens"] else 0), 3))
        assert [e["at_token"] for e in line["switches"]] == boundaries
        assert "".join(s["text"] for s in line["spans"]).strip() == line["output"]


def test_the_selector_decides_who_writes(api, tiny_pool_paths, other_tokenizer_model, monkeypatch):
    from moco_methods_api.switch_generation import SwitchGeneration

    def alternating(self, queries, spent=None):
        return lambda positions, view: [(view.generated(p) // 3) % 2 for p in positions]

    monkeypatch.setattr(SwitchGeneration, "_selector_choose", alternating)
    data = api.data([], [(f"test question {i}", "x") for i in range(3)])
    params = {"patch_size": 3, "selector_model": str(tiny_pool_paths[1])}
    result, run = api.run(
        "switch_generation", pool(tiny_pool_paths, other_tokenizer_model), data, params, generation=GENERATION
    )
    assert result.exit_code == 0, result.output
    for line in api.predictions(run):
        models = [e["model"] for e in line["switches"]]
        assert models == ["a", "b", "a"][: len(models)]
        assert [s["model"] for s in line["spans"]] == ["a", "b", "a"][: len(line["spans"])]
        assert all(s["tokens"] == 3 for s in line["spans"][:-1])


def test_selector_is_trained_through_the_training_hook(api, tiny_pool_paths, other_tokenizer_model):
    pytest.importorskip("trl")
    data = api.data([(f"dev question {i}", "x") for i in range(2)], [("test question", "x")])
    params = {"patch_size": 4, "rollouts_per_example": 2, "train_examples": 2, "rollout_score": "scorer"}
    result, run = api.run(
        "switch_generation", pool(tiny_pool_paths, other_tokenizer_model), data, params, generation=GENERATION
    )
    assert result.exit_code == 0, result.output
    assert api.metrics(run)["selector_trained"]


def test_a_rerun_decodes_no_rollout_and_reuses_the_trained_selector(
    api, tiny_pool_paths, other_tokenizer_model, monkeypatch
):
    pytest.importorskip("trl")
    from moco_methods_api.switch_generation import SwitchGeneration

    data = api.data([(f"dev question {i}", "x") for i in range(2)], [("test question", "x")])
    params = {"patch_size": 4, "rollouts_per_example": 2, "train_examples": 2, "rollout_score": "scorer"}
    models = pool(tiny_pool_paths, other_tokenizer_model)
    result, run = api.run("switch_generation", models, data, params, out="first", generation=GENERATION)
    assert result.exit_code == 0, result.output
    first = api.metrics(run)
    assert first["generations"]["made"] >= 2 * 2 and len(first["training"]) == 1

    decoded: list[int] = []
    original = SwitchGeneration._decode

    def counting(self, queries, *args, **kwargs):
        decoded.append(len(queries))
        return original(self, queries, *args, **kwargs)

    def no_training(*args, **kwargs):
        raise AssertionError("the selector was trained again")

    monkeypatch.setattr(SwitchGeneration, "_decode", counting)
    monkeypatch.setattr("moco_core.training_run.run_trainer", no_training)
    again, rerun = api.run("switch_generation", models, data, params, out="again", generation=GENERATION)
    assert again.exit_code == 0, again.output
    second = api.metrics(rerun)
    assert decoded == [] and second["generations"]["made"] == 0
    assert second["training"][0]["output"] == first["training"][0]["output"] == first["selector_trained"]


def test_rollouts_can_be_scored_by_a_reward_model(api, tiny_pool_paths, other_tokenizer_model, tmp_path):
    pytest.importorskip("trl")
    from moco_core.plugins import get_registry
    from moco_core.testing import build_tiny_reward_model

    if "reward_model" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    reward = build_tiny_reward_model(tmp_path / "reward")
    data = api.data([("dev question", "x")], [("test question", "x")])
    params = {"patch_size": 4, "rollouts_per_example": 2, "train_examples": 1, "reward_model": str(reward)}
    models = pool(tiny_pool_paths, other_tokenizer_model)
    result, run = api.run("switch_generation", models, data, params, generation=GENERATION)
    assert result.exit_code == 0, result.output
    assert api.metrics(run)["selector_trained"]
