"""Entry point ``evals`` of group ``moco``: registers every built-in dataset and the scorer of
every task type (multiple_choice, exact_match, f1_match, noncompliance, coding, reward_model,
general_verifier, generation_diversity).

Imports only pure-Python modules (math-verify/sympy load on first symbolic comparison), so
listing datasets never pulls in torch or sympy; model-based scorers load their models on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import ScorerSpec
from moco_evals import coding, diversity, exact_match, f1_match, multiple_choice, noncompliance, reward, verifier
from moco_evals.catalog import dataset_specs


def scorer_specs() -> list[ScorerSpec]:
    """The task types this plugin knows how to prompt, extract and score."""
    modules = (multiple_choice, exact_match, f1_match, noncompliance, coding, reward, verifier, diversity)
    return [module.scorer_spec() for module in modules]


@hookimpl
def moco_register_scorers(register: Callable[..., None]) -> None:
    for spec in scorer_specs():
        register(spec)


@hookimpl
def moco_register_datasets(register: Callable[..., None]) -> None:
    for spec in dataset_specs():
        register(spec)
