"""Training jobs of the text-level methods, through the training hook (``ctx.train``).

The hook content-addresses every job by its recipe (base identity, rows, hyperparameters), so a
second run of the same method on the same pool and data reuses the trained folders instead of
training again. Trained models join the pool as new members next to the originals.
"""

from __future__ import annotations

from typing import Any

from moco_core.config import ModelConfig
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.training import ORIGINAL_LORA
from moco_core.types import TrainingJob
from moco_core.validation import RunPlan


def require_trainable(plan: RunPlan, key: str) -> None:
    """Refuse members the training hook cannot train (not local Hugging Face models), at plan time."""
    for i, model in enumerate(plan.config.models):
        backend = model.backend
        if backend != "hf":
            raise MocoError(f"models[{i}].backend: {key} trains its models, which needs backend 'hf', not {backend!r}")


def hyperparameters(**overrides: Any) -> dict[str, Any]:
    return {**ORIGINAL_LORA, **{k: v for k, v in overrides.items() if v is not None}}


def train(
    ctx: MethodContext,
    kind: str,
    base_member: str,
    rows: list[dict[str, Any]],
    hyper: dict[str, Any],
    reward: dict[str, Any] | None = None,
    label: str = "",
) -> str:
    """Train on ``base_member``'s weights; returns the folder (the hook records its summary in the metrics)."""
    job = TrainingJob(
        kind=kind,
        base_model=ctx.pool.resolved_path(base_member),
        data=rows,
        hyperparameters=hyper,
        reward=reward,
        seed=ctx.settings.seed,
    )
    folder = ctx.train(job)
    ctx.metrics.setdefault("training_jobs", []).append(
        {"job": label or kind, "base": base_member, "rows": len(rows), "output": folder}
    )
    return folder


def add_member(ctx: MethodContext, like: str, name: str, folder: str) -> str:
    """Add ``folder`` to the pool as ``name``, with ``like``'s system prompt and backend."""
    config = ctx.pool.config(like)
    ctx.pool.add(ModelConfig(name=name, path=folder, system_prompt=config.system_prompt, backend=config.backend))
    return name
