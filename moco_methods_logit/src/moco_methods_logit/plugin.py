"""Registers the logit-level methods (the implementations import torch only when a run needs them)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_methods_logit.params import LogitFusionParams


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="logit_fusion",
            level="logit",
            implementation="moco_methods_logit.logit_fusion:LogitFusion",
            summary="Decode from the weighted average of the models' next-token distributions (probs or logits).",
            params=LogitFusionParams,
            requirements=Requirements(min_models=2, same_tokenizer=True),
            reference="MoCo / ensemble decoding",
        )
    )
