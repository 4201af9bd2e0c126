"""Registers the weight-level methods (implementations, and mergekit, import lazily)."""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import MethodSpec, NoParams, Requirements


@hookimpl
def moco_register_methods(register: Callable[..., None]) -> None:
    register(
        MethodSpec(
            key="greedy_soup",
            level="weight",
            implementation="moco_methods_weight.greedy_soup:GreedySoup",
            summary="Average weights greedily: from the dev-best model, add each next model only if dev does not drop.",
            params=NoParams,
            requirements=Requirements(min_models=2, same_architecture=True, same_tokenizer=True),
            reference="Wortsman et al. 2022, Model soups",
            trains=False,
        )
    )
