"""Registers the API-level methods and the single-model baseline (imports stay lazy)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_methods_api.params import PromptRoutingParams


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="single_model",
            level="baseline",
            implementation="moco_methods_api.single_model:SingleModel",
            summary="Every pool model alone; reports the dev-best model's answers and every model's scores.",
            requirements=Requirements(min_models=1),
            reference="the best-single-model baseline of every comparison",
        )
    )
    register(
        MethodSpec(
            key="prompt_routing",
            level="api",
            implementation="moco_methods_api.prompt_routing:PromptRouting",
            summary="A router model reads the query and the models' descriptions and picks the model that answers.",
            params=PromptRoutingParams,
            requirements=Requirements(min_models=2, descriptions=True),
            reference="Feng et al. 2025, When One LLM Drools, Multi-LLM Collaboration Rules (API-level routing)",
        )
    )
