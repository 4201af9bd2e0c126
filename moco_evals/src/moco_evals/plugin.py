"""Entry point ``evals`` of group ``moco``: registers the benchmark datasets and the
``multiple_choice`` and ``exact_match`` scorers.

Imports only pure-Python modules, so listing datasets never pulls in torch.
"""

from __future__ import annotations

from collections.abc import Callable

from moco_core.hookspecs import hookimpl
from moco_core.registry import ScorerSpec
from moco_evals.catalog import dataset_specs
from moco_evals.exact_match import extract_exact_match, score_exact_match
from moco_evals.multiple_choice import extract_choice, score_multiple_choice
from moco_evals.prompts import exact_match_prompt, multiple_choice_prompt


def scorer_specs() -> list[ScorerSpec]:
    """The task types this plugin knows how to prompt, extract and score."""
    return [
        ScorerSpec(
            task_type="multiple_choice",
            prompt=multiple_choice_prompt,
            extract=extract_choice,
            score=score_multiple_choice,
            metric="accuracy",
        ),
        ScorerSpec(
            task_type="exact_match",
            prompt=exact_match_prompt,
            extract=extract_exact_match,
            score=score_exact_match,
            metric="accuracy",
        ),
    ]


@hookimpl
def moco_register_scorers(register: Callable[..., None]) -> None:
    for spec in scorer_specs():
        register(spec)


@hookimpl
def moco_register_datasets(register: Callable[..., None]) -> None:
    for spec in dataset_specs():
        register(spec)
