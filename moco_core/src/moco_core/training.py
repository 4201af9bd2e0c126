"""Core's default training: a ``TrainingJob`` run with TRL (SFT, DPO, GRPO) and PEFT (LoRA), or
with the trainer of a kind a method registered (``training_data.register_training_kind``).

Like merges, results are content-addressed: the folder is keyed by the job's recipe (the base's
full identity, a hash of the rows, kind, adapter, hyperparameters, reward, seed, dtype and
library versions), the recipe is saved beside the weights, and a finished identical job is
returned at once.  A job is written to a sibling folder and renamed when complete, so a killed
job never leaves a folder that is later served.  TRL and PEFT are imported only when a job
trains; they come with ``pip install 'moco-core[train]'``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from moco_core.artifacts import clear_stale_output, staged_folder
from moco_core.cache import cache_key, default_cache_dir
from moco_core.config import format_validation_error
from moco_core.errors import MocoError
from moco_core.models import IDENTITY_FILE, adapter_base, is_adapter_folder, model_identity, resolve_model_path
from moco_core.pool import resolve_dtype
from moco_core.rewards import check_reward
from moco_core.training_data import TrainingKind, check_rows, data_hash, training_kind
from moco_core.types import TrainingJob

log = logging.getLogger(__name__)

ADAPTERS = ("lora", "full")
SUMMARY_FILE = "training_summary.json"
LOG_FILE = "trainer_log.jsonl"
INSTALL_HINT = "pip install 'moco-core[train]'"


ORIGINAL_LORA = {
    "lora_r": 64,
    "lora_alpha": 16.0,
    "lora_dropout": 0.1,
    "lr_scheduler": "cosine",
    "warmup_ratio": 0.1,
    "batch_size": 1,
    "grad_accum": 16,
    "max_length": 4096,
}
"""The LoRA setup every training method of the original used (its routers: accumulation 32); the
methods start their jobs from it so results reproduce, where ``Hyperparameters`` keeps generic
defaults for a lab's own jobs."""


class Hyperparameters(BaseModel):
    """A job's training settings; unknown keys are refused so a typo never trains silently.

    ``lr`` defaults to 2e-4 with LoRA and 2e-5 for full fine-tuning.  ``lora_target_modules``
    defaults to the attention projections (q/k/v/o) where the model names them so, else PEFT's
    choice for the architecture.  ``beta`` is DPO's and GRPO's KL weight; ``num_generations``,
    ``max_completion_length`` and ``temperature`` drive GRPO's sampling.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    lr: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    gradient_checkpointing: bool = False
    max_length: int = Field(default=1024, ge=8)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"] = "linear"
    lora_r: int = Field(default=64, ge=1)
    lora_alpha: float = Field(default=16.0, gt=0)
    lora_dropout: float = Field(default=0.1, ge=0, lt=1)
    lora_target_modules: list[str] | None = None
    beta: float = Field(default=0.1, ge=0)
    num_generations: int = Field(default=4, ge=2)
    max_completion_length: int = Field(default=64, ge=1)
    temperature: float = Field(default=1.0, gt=0)
    init_from: str | None = None
    """A finished job's folder a kind starts from (co_llm's marginal likelihood: its defer-head job)."""


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def check_hyperparameters(job: TrainingJob) -> Hyperparameters:
    try:
        hyper = Hyperparameters.model_validate(job.hyperparameters)
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, "training.hyperparameters")) from None
    if hyper.lr is None:
        hyper.lr = 2e-4 if job.adapter == "lora" else 2e-5
    if job.kind == "grpo" and hyper.batch_size % hyper.num_generations:
        raise MocoError(
            f"training.hyperparameters.batch_size: {hyper.batch_size} is not a multiple of "
            f"num_generations {hyper.num_generations} (GRPO scores whole groups)"
        )
    return hyper


def _model_folder(path: str) -> str:
    """The folder (or hub id) whose config describes the model to train."""
    return adapter_base(path) or path


def check_causal_lm(base: str) -> None:
    """Refuse a base that is missing or not a causal language model, from its config alone."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    folder = _model_folder(base)
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MocoError(f"training.base_model: cannot read {base}: {detail}") from None
    architectures = getattr(config, "architectures", None) or []
    if architectures:
        causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    else:
        causal = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if not causal:
        named = ", ".join(architectures) or config.model_type
        raise MocoError(f"training.base_model: {base} is not a causal language model ({named})")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_init(hyper: Hyperparameters) -> None:
    if hyper.init_from is not None and not (Path(hyper.init_from) / IDENTITY_FILE).is_file():
        raise MocoError(f"training.hyperparameters.init_from: {hyper.init_from} is not a finished training folder")


def check_job(job: TrainingJob) -> Hyperparameters:
    """Every check of a job that needs no weights; one ``MocoError`` line naming the field."""
    spec = training_kind(job.kind)
    adapters = tuple(a for a in ADAPTERS if a in spec.adapters)
    if job.adapter not in adapters:
        raise MocoError(f"training.adapter: unknown adapter {job.adapter!r} (expected {', '.join(adapters)})")
    if job.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise MocoError(f"training.dtype: unknown dtype {job.dtype!r} (expected auto, float32, bfloat16 or float16)")
    hyper = check_hyperparameters(job)
    _check_init(hyper)
    gold = check_reward(job.reward) if spec.reward else None
    if not spec.reward and job.reward is not None:
        raise MocoError(f"training.reward: only grpo jobs take a reward, this is {job.kind}")
    check_rows(job.kind, job.data, gold)
    if not job.base_model:
        raise MocoError("training.base_model: empty")
    check_causal_lm(resolve_model_path(job.base_model))
    return hyper


def training_recipe(job: TrainingJob, hyper: Hyperparameters) -> dict[str, Any]:
    """Everything that determines the trained weights (not where they are written)."""
    dtype = resolve_dtype(job.dtype, resolve_device(job.device))
    base = resolve_model_path(job.base_model)
    identity = model_identity(base, dtype)
    if is_adapter_folder(base):
        identity["base"] = model_identity(resolve_model_path(_model_folder(base)), dtype)
    recipe = {
        "kind": "training",
        "job": job.kind,
        "engine": {p: _version(p) for p in ("trl", "peft", "transformers", "torch")},
        "base_model": identity,
        "data": data_hash(job.data),
        "rows": len(job.data),
        "adapter": job.adapter,
        "hyperparameters": hyper.model_dump(exclude={"init_from"}),
        "reward": job.reward,
        "seed": job.seed,
        "dtype": dtype,
    }
    spec = training_kind(job.kind)
    if spec.version is not None:
        recipe["loss"] = spec.version
    if hyper.init_from is not None:
        recipe["init_from"] = json.loads((Path(hyper.init_from) / IDENTITY_FILE).read_text(encoding="utf-8"))
    return json.loads(json.dumps(recipe))


def training_output_dir(recipe: dict[str, Any]) -> Path:
    """``<cache dir>/training/<recipe hash>``: every run asking for the same job shares it."""
    return default_cache_dir() / "training" / cache_key(**recipe)[:24]


def _complete(folder: Path, recipe: dict[str, Any]) -> bool:
    identity = folder / IDENTITY_FILE
    if not identity.is_file() or not any(folder.glob("*.safetensors")):
        return False
    try:
        return json.loads(identity.read_text(encoding="utf-8")) == recipe
    except (OSError, json.JSONDecodeError):
        return False


def _prepare_target(target: Path, base: str) -> None:
    """Clear a stale training result at ``target``, but never the base or a folder training did not write."""
    if str(target) == base:
        raise MocoError(f"training.output_dir: {target} is the base model's folder")
    clear_stale_output(
        target,
        "training",
        f"training.output_dir: {target} exists and was not written by moco training; refusing to overwrite",
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_stale_partials(target: Path) -> None:
    """Remove half-written folders of this job left by processes that died mid-training."""
    for folder in target.parent.glob(f"{target.name}.partial-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _require_libraries(spec: TrainingKind) -> None:
    missing = [p for p in spec.requires if _version(p) is None]
    if missing:
        raise MocoError(f"training needs {' and '.join(missing)}: {INSTALL_HINT}")


def train(job: TrainingJob) -> str:
    """Run ``job`` (or reuse its finished folder) and return the folder, a valid pool ``path``.

    A LoRA job writes a PEFT adapter folder (``adapter_config.json`` names the base), a full
    job a model folder; either holds the tokenizer, the recipe (``moco_identity.json``), the
    trainer log (``trainer_log.jsonl``) and a summary (``training_summary.json``).
    """
    hyper = check_job(job)
    recipe = training_recipe(job, hyper)
    target = Path(job.output_dir).expanduser().resolve() if job.output_dir else training_output_dir(recipe)
    if _complete(target, recipe):
        log.info("reusing trained %s", target)
        return str(target)
    _require_libraries(training_kind(job.kind))
    base = resolve_model_path(job.base_model)
    _prepare_target(target, base)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale_partials(target)
    log.info("training %s (%s, %d rows) into %s", job.kind, job.adapter, len(job.data), target)
    with staged_folder(target, recipe, lambda folder: _complete(folder, recipe)) as partial:
        from moco_core.training_run import run_trainer

        partial.mkdir()
        summary = run_trainer(job, hyper, recipe, base, partial)
        (partial / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return str(target)


def training_summary(folder: str | Path) -> dict[str, Any]:
    """The summary a finished job left beside its weights (empty when there is none)."""
    file = Path(folder) / SUMMARY_FILE
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def record_training(folder: str | Path, work_dir: Path) -> dict[str, Any]:
    """Copy a job's trainer log next to the run (``work_dir/training/<folder>.jsonl``); its summary."""
    folder = Path(folder)
    log_file = folder / LOG_FILE
    if log_file.is_file():
        (work_dir / "training").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log_file, work_dir / "training" / f"{folder.name}.jsonl")
    return {"output": str(folder), **training_summary(folder)}
