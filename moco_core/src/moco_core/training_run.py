"""The part of a training job that needs TRL, PEFT and torch: load, train, log, save.

Kept apart from ``training.py`` so checking and reusing a job imports none of them.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moco_core.cache import cache_key, default_cache_dir
from moco_core.models import IDENTITY_FILE, adapter_base, is_adapter_folder, model_identity, resolve_model_path
from moco_core.rewards import reward_function
from moco_core.training_data import ROW_COLUMN, RowShaper, completion_text, training_kind
from moco_core.types import TrainingJob

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def merged_adapter_folder(path: str) -> str:
    """A full model folder of an adapter merged into its base, written once under the moco cache.

    Training on top of an adapter trains its merged weights, and a new LoRA adapter must name
    a real folder as its base.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolve_model_path(adapter_base(path) or "")
    identity = {
        "kind": "adapter_merge",
        "adapter": model_identity(path, "float32"),
        "base": model_identity(base, "float32"),
    }
    target = default_cache_dir() / "training" / f"merged-{cache_key(**identity)[:24]}"
    if (target / IDENTITY_FILE).is_file():
        return str(target)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype="float32")
        PeftModel.from_pretrained(model, path).merge_and_unload().save_pretrained(partial)
        AutoTokenizer.from_pretrained(base).save_pretrained(partial)
        (partial / IDENTITY_FILE).write_text(json.dumps(identity, sort_keys=True), encoding="utf-8")
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return str(target)


def _jsonl_callback(path: Path) -> Any:
    """A trainer callback appending every log (loss, reward, ...) with its step to ``path``."""
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            row = {"step": state.global_step, **{k: v for k, v in (logs or {}).items() if isinstance(v, int | float)}}
            self.rows.append(row)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")

    return JsonlLog()


def _lora_config(model: Any, hyper: Any) -> Any:
    from peft import LoraConfig

    targets = hyper.lora_target_modules
    if targets is None:
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        targets = [t for t in ATTENTION_PROJECTIONS if t in names] or None
    return LoraConfig(
        r=hyper.lora_r,
        lora_alpha=hyper.lora_alpha,
        lora_dropout=hyper.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


def _trl_reward(job: TrainingJob) -> Any:
    from moco_core.plugins import get_plugin_manager

    score = reward_function(job.reward or {}, get_plugin_manager().hook)

    def reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        rows = [json.loads(r) for r in columns[ROW_COLUMN]]
        return score([completion_text(c) for c in completions], rows)

    return reward


@dataclass
class TrainerInputs:
    """What a kind's trainer function gets: build a ``transformers.Trainer`` (subclass) from these.

    ``args`` are ``TrainingArguments`` keywords the engine fixed (output dir, epochs, steps, lr,
    batch size, seed, precision, logging every step, no checkpoints); pass them on unchanged.
    ``peft_config`` is the LoRA config for ``adapter: lora`` jobs (None for full).
    ``init_from`` is ``hyperparameters.init_from``: a finished job's folder to start from.
    """

    job: TrainingJob
    hyper: Any
    model: Any
    tokenizer: Any
    dataset: Any
    args: dict[str, Any]
    peft_config: Any
    init_from: str | None


def sft_trainer(inputs: TrainerInputs) -> Any:
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**inputs.args, max_length=inputs.hyper.max_length, completion_only_loss=True)
    return SFTTrainer(
        model=inputs.model,
        args=args,
        train_dataset=inputs.dataset,
        processing_class=inputs.tokenizer,
        peft_config=inputs.peft_config,
    )


def dpo_trainer(inputs: TrainerInputs) -> Any:
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**inputs.args, max_length=inputs.hyper.max_length, beta=inputs.hyper.beta)
    return DPOTrainer(
        model=inputs.model,
        args=args,
        train_dataset=inputs.dataset,
        processing_class=inputs.tokenizer,
        peft_config=inputs.peft_config,
    )


def grpo_trainer(inputs: TrainerInputs) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    hyper = inputs.hyper
    args = GRPOConfig(
        **inputs.args,
        beta=hyper.beta,
        num_generations=hyper.num_generations,
        max_completion_length=hyper.max_completion_length,
        temperature=hyper.temperature,
    )
    return GRPOTrainer(
        model=inputs.model,
        reward_funcs=[_trl_reward(inputs.job)],
        args=args,
        train_dataset=inputs.dataset,
        processing_class=inputs.tokenizer,
        peft_config=inputs.peft_config,
    )


def _trainer(job: TrainingJob, hyper: Any, model: Any, tokenizer: Any, dataset: Any, common: dict[str, Any]) -> Any:
    """The kind's trainer, built by the function its ``TrainingKind`` names."""
    spec = training_kind(job.kind)
    module, _, name = spec.trainer.partition(":")
    build = getattr(importlib.import_module(module), name)
    peft_config = _lora_config(model, hyper) if job.adapter == "lora" else None
    return build(TrainerInputs(job, hyper, model, tokenizer, dataset, common, peft_config, hyper.init_from))


def run_trainer(job: TrainingJob, hyper: Any, recipe: dict[str, Any], base: str, out: Path) -> dict[str, Any]:
    """Train ``job`` on ``base`` and save the result into ``out``; returns the run's summary."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    from moco_core.training import LOG_FILE, resolve_device

    quiet = not sys.stderr.isatty()
    if quiet:
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    if is_adapter_folder(base):
        base = merged_adapter_folder(base)
    device, dtype = resolve_device(job.device), recipe["dtype"]
    weights_dtype = dtype if job.adapter == "lora" else "float32"
    set_seed(job.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, weights_dtype))
    shaper = RowShaper(tokenizer)
    dataset = datasets.Dataset.from_list([shaper.shape(job.kind, row) for row in job.data])
    common = {
        "output_dir": str(out / "trainer"),
        "num_train_epochs": hyper.epochs,
        "max_steps": hyper.max_steps or -1,
        "learning_rate": hyper.lr,
        "per_device_train_batch_size": hyper.batch_size,
        "gradient_accumulation_steps": hyper.grad_accum,
        "activation_checkpointing": hyper.gradient_checkpointing,
        "weight_decay": hyper.weight_decay,
        "warmup_steps": hyper.warmup_ratio,
        "lr_scheduler_type": hyper.lr_scheduler,
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "no",
        "seed": job.seed,
        "data_seed": job.seed,
        "bf16": dtype == "bfloat16",
        "fp16": dtype == "float16",
        "use_cpu": device == "cpu",
        "disable_tqdm": quiet,
        "dataloader_num_workers": 0,
    }
    trainer = _trainer(job, hyper, model, tokenizer, dataset, common)
    trainer.remove_callback(PrinterCallback)
    logger = _jsonl_callback(out / LOG_FILE)
    trainer.add_callback(logger)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    if hasattr(trainer, "save_result"):
        trainer.save_result(out)
    else:
        trainer.model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    shutil.rmtree(out / "trainer", ignore_errors=True)
    return summarise(job, logger.rows, trainer.state.global_step, seconds, device)


def summarise(job: TrainingJob, rows: list[dict[str, Any]], steps: int, seconds: float, device: str) -> dict[str, Any]:
    """Steps, first and final loss (and reward for GRPO), wall seconds: what ``metrics.json`` records."""
    losses = [r["loss"] for r in rows if "loss" in r]
    summary: dict[str, Any] = {
        "kind": job.kind,
        "adapter": job.adapter,
        "rows": len(job.data),
        "steps": steps,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "seconds": round(seconds, 3),
        "device": device,
    }
    rewards = [r["reward"] for r in rows if "reward" in r]
    if rewards:
        summary["first_reward"], summary["final_reward"] = rewards[0], rewards[-1]
    return summary
