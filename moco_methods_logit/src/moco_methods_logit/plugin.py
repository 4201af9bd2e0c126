"""Registers the logit-level methods (the implementations import torch only when a run needs them)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_methods_logit.params import LogitContrastiveParams, LogitFusionParams


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="logit_fusion",
            level="logit",
            implementation="moco_methods_logit.logit_fusion:LogitFusion",
            summary="Decode from the weighted average of the models' next-token distributions (probs or logits).",
            params=LogitFusionParams,
            requirements=Requirements(min_models=2),
            reference=(
                "Feng et al. 2025, When One LLM Drools, Multi-LLM Collaboration Rules, arXiv:2502.04506 "
                "(logit-level collaboration); logit space: Hinton 2002, Training Products of Experts by "
                "Minimizing Contrastive Divergence, Neural Computation 14(8); vocabulary byte: Phan et al. 2024, "
                "Exact Byte-Level Probabilities from Tokenized Language Models for FIM-Tasks and Model Ensembles, "
                "arXiv:2410.09303"
            ),
        )
    )
    register(
        MethodSpec(
            key="logit_contrastive",
            level="logit",
            implementation="moco_methods_logit.logit_contrastive:LogitContrastive",
            summary="Decode from the dev-best model plus alpha x (top-k minus bottom-k) logits or probabilities.",
            params=LogitContrastiveParams,
            requirements=Requirements(min_models=2, dev_split=True),
            reference=(
                "Li et al. 2023, Contrastive Decoding: Open-ended Text Generation as Optimization, ACL 2023, "
                "arXiv:2210.15097; vocabulary byte: Phan et al. 2024, Exact Byte-Level Probabilities from Tokenized "
                "Language Models for FIM-Tasks and Model Ensembles, arXiv:2410.09303"
            ),
        )
    )
