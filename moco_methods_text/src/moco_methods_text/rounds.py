"""Rounds of text exchange: one batched request per model over all examples, and shared checks.

Round 0 is ``MethodContext.answer`` — the task prompt with the member's system prompt and
sample index 0, exactly the request ``majority_vote`` and ``single_model`` make — so the
generation cache serves it once to every method run on the same pool and data.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from moco_core.errors import MocoError
from moco_core.method import MethodContext
from moco_core.types import Example, GenerationRequest
from moco_core.validation import RunPlan


def initial_answers(ctx: MethodContext, names: Sequence[str], examples: Sequence[Example]) -> dict[str, list[str]]:
    """Round 0: every named member answers every example's task prompt."""
    return {name: [g.text for g in ctx.answer(name, examples)] for name in names}


def ask(ctx: MethodContext, name: str, prompts: Sequence[str | GenerationRequest]) -> list[str]:
    """Member ``name`` answers ``prompts`` in one batched, cached request."""
    if not prompts:
        return []
    return [g.text for g in ctx.pool.generate(name, list(prompts), ctx.settings)]


def ask_each(ctx: MethodContext, prompts: Mapping[str, Sequence[str | GenerationRequest]]) -> dict[str, list[str]]:
    """Every member answers its own list of prompts: one request per member, model-major."""
    return {name: ask(ctx, name, rows) for name, rows in prompts.items()}


def rng(ctx: MethodContext, *parts: Any) -> random.Random:
    """A random stream fixed by the run seed and ``parts`` (example key, round, ...)."""
    return random.Random(":".join(str(p) for p in (ctx.settings.seed, *parts)))


def require_dev(plan: RunPlan, key: str, why: str) -> None:
    """Refuse data without a dev split when the method needs one (a plan-time check)."""
    if not plan.dataset.dev:
        raise MocoError(f"dataset: {plan.dataset.name} has no dev split, which {key} needs ({why})")


def check_member(plan: RunPlan, field: str, name: str | None) -> None:
    """Refuse a parameter naming a member the pool does not have (a plan-time check)."""
    names = plan.pool_names
    if name is not None and name not in names:
        raise MocoError(f"params.{field}: {name!r} is not a pool model (pool: {', '.join(names)})")


def needs_dev_best(plan: RunPlan, key: str, *chosen: str | None) -> None:
    """Refuse data without a dev split when the method will pick a member by dev score (a plan-time check).

    ``chosen`` are the parameters that name a member instead; the dev-best is needed when any is unset
    (or when the method has none).
    """
    if len(plan.config.models) > 1 and (not chosen or None in chosen):
        require_dev(plan, key, "it picks the dev-best member")


def dev_best(ctx: MethodContext) -> str:
    """The dev-best member; a one-model pool needs no dev split for that."""
    return ctx.pool.names[0] if len(ctx.pool) == 1 else ctx.dev_best()


def plurality(answers: Sequence[Any]) -> tuple[str | None, dict[str, int]]:
    """The most frequent non-None answer (ties: the one seen first) and the vote counts."""
    votes = Counter(str(a) for a in answers if a is not None)
    if not votes:
        return None, {}
    top = max(votes.values())
    winner = next(str(a) for a in answers if a is not None and votes[str(a)] == top)
    return winner, dict(votes)


def text_for(texts: Sequence[str], answers: Sequence[Any], winner: str | None) -> str:
    """The first text whose extracted answer is ``winner`` (else the first text)."""
    return next((t for t, a in zip(texts, answers, strict=True) if a is not None and str(a) == winner), texts[0])
