"""Registers the text-level methods (implementations import lazily)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, Requirements
from moco_methods_text.params import MajorityVoteParams


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="majority_vote",
            level="text",
            implementation="moco_methods_text.majority_vote:MajorityVote",
            summary="Every model answers; the most frequent extracted answer wins (ties by dev rank or at random).",
            params=MajorityVoteParams,
            requirements=Requirements(min_models=1),
            reference="Wang et al. 2023 (self-consistency); Feng et al. 2025 (text-level collaboration)",
        )
    )
