"""moco core: plugin hooks, config, model pool, generation cache, runner and CLI."""

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
]
