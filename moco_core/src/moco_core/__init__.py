"""moco core: plugin hooks, config, model pool, generation cache, runner and CLI.

``run``, ``load_run`` and ``predictions_frame`` (the notebook API, ``moco_core.api``) are imported
on first use, so a plugin importing ``hookimpl`` from here stays cheap.
"""

from typing import Any

from moco_core.hookspecs import hookimpl
from moco_core.registry import BackendSpec, DatasetSpec, MethodSpec, Requirements, ScorerSpec
from moco_core.types import Dataset, Example, Generation, GenerationRequest, GenerationSettings, Prediction

__all__ = [
    "BackendSpec",
    "Dataset",
    "DatasetSpec",
    "Example",
    "Generation",
    "GenerationRequest",
    "GenerationSettings",
    "MethodSpec",
    "Prediction",
    "Requirements",
    "ScorerSpec",
    "hookimpl",
    "load_run",
    "predictions_frame",
    "run",
]

_API = ("run", "load_run", "predictions_frame", "RunOutput")


def __getattr__(name: str) -> Any:
    if name in _API:
        from moco_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'moco_core' has no attribute {name!r}")
