"""The hook contract between moco's core and its plugins (pluggy project ``moco``).

Registration hooks receive a ``register`` callback so a plugin can register any number of
things and the core can validate each one.  Capability hooks return the first non-None
result: core ships a default implementation of each, and a plugin replaces it by returning a
result first (``@hookimpl(tryfirst=True)``) or returning None to pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    from moco_core.types import Example, Generation, GenerationRequest, GenerationSettings, MergeJob, TrainingJob

hookspec = pluggy.HookspecMarker("moco")
hookimpl = pluggy.HookimplMarker("moco")


@hookspec
def moco_register_methods(register: Callable[..., None]) -> None:
    """Register collaboration methods: ``register(MethodSpec(...))`` once per method."""


@hookspec
def moco_register_datasets(register: Callable[..., None]) -> None:
    """Register datasets: ``register(DatasetSpec(...))`` once per dataset key."""


@hookspec
def moco_register_scorers(register: Callable[..., None]) -> None:
    """Register task types: ``register(ScorerSpec(...))`` with prompt, extractor and scorer."""


@hookspec
def moco_register_backends(register: Callable[..., None]) -> None:
    """Register generation backends: ``register(BackendSpec(...))``."""


@hookspec(firstresult=True)
def moco_generate(
    model: Any, requests: list[GenerationRequest], settings: GenerationSettings
) -> list[Generation] | None:
    """Generate one continuation per request with a loaded pool model, in batches.

    ``model`` is a ``moco_core.pool.LoadedModel``.  Must return one ``Generation`` per request,
    in order, deterministic for the same seed, request and sample index.
    """


@hookspec(firstresult=True)
def moco_score(task_type: str, examples: list[Example], outputs: list[str], options: Any) -> list[float] | None:
    """Score ``outputs`` against ``examples`` of ``task_type``: one float each, in [0, 1] unless the
    task type's metric says otherwise (raw reward-model scores).  ``options`` is the run's
    ``moco_core.config.ScoringConfig`` (judge, reward, verifier and embedding models)."""


@hookspec(firstresult=True)
def moco_train(job: TrainingJob) -> str | None:
    """Run a training job and return the folder holding the trained model or adapter."""


@hookspec(firstresult=True)
def moco_merge(job: MergeJob) -> str | None:
    """Merge model weights as ``job`` says and return the output model folder."""
