"""Core's default implementations of the capability hooks; any plugin can replace them.

Registered by the plugin manager itself (not an entry point), so restricting entry points with
``MOCO_LOAD_PLUGINS`` never removes the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moco_core.hookspecs import hookimpl
from moco_core.registry import BackendSpec
from moco_core.types import Example, Generation, GenerationRequest, GenerationSettings, MergeJob


@hookimpl
def moco_register_backends(register: Callable[..., None]) -> None:
    register(
        BackendSpec(
            key="hf",
            implementation="moco_core.backends.hf:HFBackend",
            summary="Hugging Face transformers, batched, seeded per row",
        )
    )


@hookimpl
def moco_generate(model: Any, requests: list[GenerationRequest], settings: GenerationSettings) -> list[Generation]:
    return model.backend.generate(model.handle, requests, settings, model.batch_size)


@hookimpl
def moco_score(task_type: str, examples: list[Example], outputs: list[str], options: Any) -> list[float] | None:
    from moco_core.plugins import get_registry

    scorer = get_registry().scorers.get(task_type)
    return None if scorer is None else scorer.score(examples, outputs, options)


@hookimpl
def moco_merge(job: MergeJob) -> str:
    from moco_core.merging import run_mergekit

    return run_mergekit(job)
