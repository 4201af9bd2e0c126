"""Which pool members a weight method combines, and the checks that run before anything loads.

Checks take the pool's model configs (``plan.config.models`` at plan time, the pool's at run
time), so ``moco validate`` reports what ``moco run`` would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence

from moco_core.config import ModelConfig
from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.models import check_model_path
from moco_core.weight_space import check_same_shapes


def members(ctx: MethodContext) -> list[ModelConfig]:
    return [ctx.pool.config(n) for n in ctx.pool.names]


def split_base(models: Sequence[ModelConfig], base_model: str | None) -> tuple[list[str], str | None]:
    """(input member names, base model path): a base named by a pool member is not an input."""
    names = [m.name for m in models]
    if base_model is None:
        return names, None
    if base_model in names:
        return [n for n in names if n != base_model], models[names.index(base_model)].path
    try:
        check_model_path(base_model)
    except MocoError as exc:
        raise MocoError(f"params.base_model: {exc} (nor is it a pool member: {', '.join(names)})") from None
    return names, base_model


def check_inputs(models: Sequence[ModelConfig], names: Sequence[str], base: str | None = None) -> None:
    """Same tensor names and shapes across the inputs (and the base), read from file headers."""
    index = {m.name: i for i, m in enumerate(models)}
    labelled = [(f"models[{index[n]}] ({n})", models[index[n]].path) for n in names]
    if base is not None:
        labelled.insert(0, (f"params.base_model ({base})", base))
    check_same_shapes(labelled)


def lora_members(models: Sequence[ModelConfig]) -> list[tuple[str, str, str | None]]:
    """(label, path, configured base) of every member, for ``check_lora_pool``."""
    return [(f"models[{i}] ({m.name})", m.path, m.base) for i, m in enumerate(models)]


def add_model(ctx: MethodContext, name: str, folder: str, like: str) -> str:
    """Put a written model into the pool, answering with member ``like``'s backend and system prompt."""
    lead = ctx.pool.config(like)
    ctx.pool.add(ModelConfig(name=name, path=folder, backend=lead.backend, system_prompt=lead.system_prompt))
    return name
