"""The default training hook: SFT, DPO and GRPO learn; jobs are checked, cached and never half-served."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from moco_core import training
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.models import IDENTITY_FILE
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.rewards import check_reward, register_reward, reward_function, unregister_reward
from moco_core.testing import ScriptedTaskTypesPlugin, build_tiny_reward_model, registered_plugin
from moco_core.types import GenerationSettings, TrainingJob

PROMPT = "what is 2 + 3?"
TARGET = "The answer is (B)."
GREEDY = GenerationSettings(max_new_tokens=16, temperature=0.0)


def sft_job(base: Path, **changes) -> TrainingJob:
    job = TrainingJob(
        kind="sft",
        base_model=str(base),
        data=[{"prompt": PROMPT, "completion": TARGET}] * 8,
        hyperparameters={"max_steps": 30, "lr": 1e-2, "batch_size": 4},
    )
    return replace(job, **changes)


def cpu_pool(*models: ModelConfig) -> ModelPool:
    hook = get_plugin_manager().hook
    return ModelPool(list(models), HardwareConfig(device="cpu"), 4, backends=get_registry().backends, hook=hook)


def greedy(pool: ModelPool, name: str) -> str:
    return pool.generate(name, [PROMPT], GREEDY)[0].text


def test_sft_learns_a_completion_and_its_output_is_a_pool_member(tiny_pool_paths, fresh_cache_dir, tmp_path):
    base = tiny_pool_paths[0]
    pool = cpu_pool(ModelConfig(name="base", path=str(base)))
    ctx = MethodContext(pool, None, None, GREEDY, None, get_plugin_manager().hook, tmp_path / "work")
    assert greedy(pool, "base") != TARGET

    folder = ctx.train(sft_job(base))

    assert Path(folder).parent == fresh_cache_dir / "training"
    assert (Path(folder) / "adapter_config.json").is_file()
    [summary] = ctx.metrics["training"]
    assert summary["steps"] == 30 and summary["output"] == folder
    assert summary["final_loss"] < summary["first_loss"] / 4
    log_rows = [json.loads(line) for line in (tmp_path / "work" / "training" / f"{Path(folder).name}.jsonl").open()]
    assert [r["step"] for r in log_rows if "loss" in r] == list(range(1, 31))
    pool.add(ModelConfig(name="trained", path=folder))
    assert greedy(pool, "trained") == TARGET
    assert greedy(pool, "base") != TARGET


def test_full_fine_tuning_writes_a_model_folder(tiny_pool_paths, fresh_cache_dir):
    base = tiny_pool_paths[0]
    folder = Path(training.train(sft_job(base, adapter="full", hyperparameters={"max_steps": 2, "batch_size": 4})))
    assert (folder / "config.json").is_file() and not (folder / "adapter_config.json").exists()
    assert json.loads((folder / IDENTITY_FILE).read_text())["adapter"] == "full"
    pool = cpu_pool(ModelConfig(name="full", path=str(folder)))
    assert isinstance(greedy(pool, "full"), str)


def test_identical_job_is_reused_and_any_recipe_change_retrains(tiny_pool_paths, fresh_cache_dir, trainer_calls):
    base = tiny_pool_paths[0]
    job = sft_job(base, hyperparameters={"max_steps": 2, "batch_size": 4})
    first = training.train(job)
    started = time.perf_counter()
    again = training.train(sft_job(base, hyperparameters={"max_steps": 2, "batch_size": 4}))
    assert again == first and trainer_calls == ["sft"]
    assert time.perf_counter() - started < 1.0
    assert training.train(replace(job, seed=1)) != first
    assert trainer_calls == ["sft", "sft"]

    hyper = training.check_hyperparameters(job)
    folder = training.training_output_dir(training.training_recipe(job, hyper))
    assert str(folder) == first
    changed = [
        replace(job, data=[{"prompt": PROMPT, "completion": "other"}]),
        replace(job, kind="dpo"),
        replace(job, adapter="full"),
        replace(job, seed=7),
        replace(job, dtype="bfloat16"),
        replace(job, base_model=str(tiny_pool_paths[1])),
        replace(job, reward={"type": "registered", "name": "x"}),
    ]
    folders = {training.training_output_dir(training.training_recipe(j, hyper)) for j in changed}
    other_hyper = training.check_hyperparameters(replace(job, hyperparameters={"max_steps": 3}))
    folders.add(training.training_output_dir(training.training_recipe(job, other_hyper)))
    assert len(folders) == len(changed) + 1 and folder not in folders


def test_explicit_output_dir_and_stale_folders(tiny_pool_paths, fresh_cache_dir, tmp_path, trainer_calls):
    base = tiny_pool_paths[0]
    target = tmp_path / "my-adapter"
    job = sft_job(base, output_dir=str(target), hyperparameters={"max_steps": 1, "batch_size": 4})
    assert training.train(job) == str(target)
    assert training.train(replace(job, seed=3)) == str(target)  # a stale training result is replaced
    assert json.loads((target / IDENTITY_FILE).read_text())["seed"] == 3
    assert trainer_calls == ["sft", "sft"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(MocoError, match="not written by moco training"):
        training.train(replace(job, output_dir=str(foreign)))


KILLED_JOB = """
import os, signal, sys
from moco_core import training, training_run
from moco_core.types import TrainingJob

def killed(job, hyper, recipe, base, out):
    (out / "adapter_model.safetensors").write_bytes(b"half")
    (out / "adapter_config.json").write_text("{}")
    os.kill(os.getpid(), signal.SIGKILL)

training_run.run_trainer = killed
training.train(TrainingJob(**__import__("json").loads(sys.argv[1])))
"""


def test_a_job_killed_mid_training_is_not_served(tiny_pool_paths, fresh_cache_dir, trainer_calls):
    job = sft_job(tiny_pool_paths[0], hyperparameters={"max_steps": 1, "batch_size": 4})
    spec = json.dumps(
        {"kind": job.kind, "base_model": job.base_model, "data": job.data, "hyperparameters": job.hyperparameters}
    )
    env = {**os.environ, "MOCO_CACHE_DIR": str(fresh_cache_dir)}
    done = subprocess.run([sys.executable, "-c", KILLED_JOB, spec], env=env, capture_output=True, timeout=120)
    assert done.returncode == -9
    folder = training.training_output_dir(training.training_recipe(job, training.check_hyperparameters(job)))
    assert not folder.exists() and list(folder.parent.glob(f"{folder.name}.partial-*"))

    assert training.train(job) == str(folder)
    assert trainer_calls == ["sft"]
    assert (folder / "adapter_model.safetensors").read_bytes() != b"half"
    assert not list(folder.parent.glob(f"{folder.name}.partial-*"))


def completion_logprob(model, tokenizer, prompt: str, completion: str) -> float:
    import torch

    from moco_core.backends.hf import render_prompt

    prompt_ids = tokenizer(render_prompt(tokenizer, prompt, None), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
    positions = range(len(prompt_ids) - 1, ids.shape[1] - 1)
    return float(sum(logprobs[p, ids[0, p + 1]] for p in positions))


def test_dpo_raises_the_chosen_over_rejected_margin(tiny_pool_paths, fresh_cache_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_pool_paths[0]
    chosen, rejected = "The answer is (A).", "The answer is (C)."
    job = TrainingJob(
        kind="dpo",
        base_model=str(base),
        data=[{"prompt": PROMPT, "chosen": chosen, "rejected": rejected}] * 8,
        hyperparameters={"max_steps": 10, "lr": 1e-2, "batch_size": 4},
    )
    folder = training.train(job)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base).eval()

    def margin(m) -> float:
        return completion_logprob(m, tokenizer, PROMPT, chosen) - completion_logprob(m, tokenizer, PROMPT, rejected)

    before = margin(model)
    after = margin(PeftModel.from_pretrained(model, folder).eval())
    assert after > before + 1.0
    assert training.training_summary(folder)["final_loss"] < 0.69


def test_grpo_raises_the_mean_reward(tiny_pool_paths, fresh_cache_dir):
    register_reward("starts_with_space", lambda completions, rows: [float(c.startswith(" ")) for c in completions])
    try:
        job = TrainingJob(
            kind="grpo",
            base_model=str(tiny_pool_paths[0]),
            data=[{"prompt": PROMPT}, {"prompt": "Question: choose one"}] * 4,
            adapter="full",
            reward={"type": "registered", "name": "starts_with_space"},
            hyperparameters={"max_steps": 10, "lr": 2e-2, "batch_size": 8, "num_generations": 8},
        )
        folder = training.train(replace(job, hyperparameters={**job.hyperparameters, "max_completion_length": 8}))
    finally:
        unregister_reward("starts_with_space")
    rewards = [json.loads(line).get("reward") for line in (Path(folder) / training.LOG_FILE).open()]
    rewards = [r for r in rewards if r is not None]
    assert len(rewards) == 10
    assert sum(rewards[-3:]) / 3 > sum(rewards[:2]) / 2 + 0.3
    summary = training.training_summary(folder)
    assert summary["final_reward"] == rewards[-1]


def test_scorer_reward_scores_through_the_scoring_hook():
    with registered_plugin(ScriptedTaskTypesPlugin(), "scripted-task-types"):
        reward = {"type": "scorer", "task_type": "free"}
        assert check_reward(reward) == "answer"
        score = reward_function(reward, get_plugin_manager().hook)
        rows = [{"prompt": "q1", "answer": "yes"}, {"prompt": "q2", "answer": "no"}]
        assert score(["yes", "yes"], rows) == [1.0, 0.0]
        letter = reward_function({"type": "scorer", "task_type": "letter"}, get_plugin_manager().hook)
        rows = [{"prompt": "q", "answer": "B", "choices": {"A": "x", "B": "y"}}]
        assert letter(["B) y"], rows) == [1.0]


def test_training_on_an_adapter_trains_its_merged_weights(tiny_pool_paths, fresh_cache_dir):
    first = training.train(sft_job(tiny_pool_paths[0], hyperparameters={"max_steps": 2, "batch_size": 4}))
    second = training.train(sft_job(Path(first), hyperparameters={"max_steps": 2, "batch_size": 4}))
    base = json.loads((Path(second) / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base).name.startswith("merged-") and (Path(base) / "config.json").is_file()
    pool = cpu_pool(ModelConfig(name="second", path=second))
    assert isinstance(greedy(pool, "second"), str)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return build_tiny_reward_model(tmp_path_factory.mktemp("classifier") / "rm")


BAD_JOBS = [
    ({"kind": "ppo"}, "training.kind: unknown job kind 'ppo'"),
    ({"adapter": "qlora"}, "training.adapter: unknown adapter 'qlora'"),
    ({"data": []}, "training.data: no rows"),
    ({"data": {"prompt": "q"}}, "training.data: expected a list of rows, got dict"),
    ({"data": [{"prompt": "q"}]}, r"training.data\[0\].completion: missing"),
    ({"data": [{"prompt": "q", "completion": 3}]}, r"training.data\[0\].completion"),
    ({"kind": "dpo"}, r"training.data\[0\].chosen: missing"),
    ({"hyperparameters": {"epoch": 1}}, "training.hyperparameters: epoch: unknown key"),
    ({"hyperparameters": {"lr": -1}}, "training.hyperparameters: lr"),
    ({"kind": "grpo"}, "training.reward: grpo needs a reward"),
    ({"kind": "grpo", "reward": {"type": "registered", "name": "nope"}}, "training.reward.name: no reward"),
    ({"kind": "grpo", "reward": {"type": "scorer", "task_type": "nope"}}, "training.reward.task_type: no scorer"),
    ({"kind": "grpo", "reward": {"type": "python", "fn": "x"}}, "training.reward.type: unknown reward type"),
    ({"reward": {"type": "registered", "name": "x"}}, "training.reward: only grpo jobs take a reward"),
    ({"base_model": "/nonexistent/model"}, "training.base_model: cannot read /nonexistent/model"),
    ({"dtype": "int8"}, "training.dtype: unknown dtype"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_JOBS)
def test_bad_jobs_fail_in_one_line_before_training(tiny_pool_paths, fresh_cache_dir, trainer_calls, changes, message):
    with pytest.raises(MocoError, match=message) as error:
        training.train(sft_job(tiny_pool_paths[0], **changes))
    assert "\n" not in str(error.value)
    assert trainer_calls == []


def test_grpo_rewards_must_be_data_and_scorer_rows_need_gold(tiny_pool_paths, trainer_calls):
    job = sft_job(tiny_pool_paths[0], kind="grpo", reward={"type": "registered", "name": "fn", "f": print})
    with pytest.raises(MocoError, match="must be JSON data"):
        training.train(job)
    with registered_plugin(ScriptedTaskTypesPlugin(), "scripted-task-types"):
        job = sft_job(tiny_pool_paths[0], kind="grpo", reward={"type": "scorer", "task_type": "free"})
        with pytest.raises(MocoError, match=r"training.data\[0\].answer: missing"):
            training.train(job)
    assert trainer_calls == []


def test_a_base_that_is_not_a_causal_lm_is_refused(classifier, trainer_calls):
    with pytest.raises(MocoError, match=r"is not a causal language model \(LlamaForSequenceClassification\)"):
        training.train(sft_job(classifier))
    assert trainer_calls == []


def test_missing_train_extra_names_the_pip_command(tiny_pool_paths, fresh_cache_dir, monkeypatch):
    real = training._version
    monkeypatch.setattr(training, "_version", lambda package: None if package == "trl" else real(package))
    with pytest.raises(MocoError, match=r"training needs trl: pip install 'moco-core\[train\]'"):
        training.train(sft_job(tiny_pool_paths[0]))


def test_rows_are_shaped_like_the_backend_renders_prompts(tiny_pool_paths):
    from transformers import AutoTokenizer

    from moco_core.backends.hf import render_prompt
    from moco_core.training_data import RowShaper

    tokenizer = AutoTokenizer.from_pretrained(tiny_pool_paths[0])
    row = {"prompt": PROMPT, "completion": TARGET, "system": "Be brief."}
    shaped = RowShaper(tokenizer).shape("sft", row)
    rendered = tokenizer.apply_chat_template(shaped["prompt"], add_generation_prompt=True, tokenize=False)
    assert rendered == render_prompt(tokenizer, PROMPT, "Be brief.")
    assert shaped["completion"] == [{"role": "assistant", "content": TARGET}]
    tokenizer.chat_template = None
    plain = RowShaper(tokenizer).shape("dpo", {"prompt": PROMPT, "chosen": "a", "rejected": "b"})
    assert plain == {"prompt": render_prompt(tokenizer, PROMPT, None), "chosen": "a", "rejected": "b"}
