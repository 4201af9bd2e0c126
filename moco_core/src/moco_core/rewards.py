"""GRPO rewards described as data, so a job's recipe (and its cached result) can name them.

Two kinds: ``{"type": "scorer", "task_type": T}`` scores each completion through the scoring
hook against the row's gold (``answer``, plus ``choices`` and other fields the scorer reads),
and ``{"type": "registered", "name": N}`` calls a function a plugin registered under ``N``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moco_core.errors import MocoError
from moco_core.types import Example

RewardFunction = Callable[[list[str], list[dict[str, Any]]], list[float]]
"""``(completions, rows) -> one reward per completion``; rows are the job's original rows."""

_registered: dict[str, RewardFunction] = {}
EXAMPLE_FIELDS = ("index", "id", "question", "answer", "task_type", "choices", "prompt", "extra")


def register_reward(name: str, function: RewardFunction) -> None:
    """Make ``function`` usable as ``{"type": "registered", "name": name}`` in training jobs.

    The name is what the recipe records: register a changed function under a new name, or a
    finished job with the old name is reused.
    """
    _registered[name] = function


def unregister_reward(name: str) -> None:
    _registered.pop(name, None)


def check_reward(reward: dict[str, Any] | None) -> str | None:
    """Validate a reward description; returns the row field every row must carry (the gold), if any."""
    if not isinstance(reward, dict):
        raise MocoError('training.reward: grpo needs a reward, e.g. {"type": "scorer", "task_type": "exact_match"}')
    try:
        json.dumps(reward)
    except (TypeError, ValueError):
        raise MocoError("training.reward: must be JSON data (a description, not a Python callable)") from None
    kind = reward.get("type")
    if kind == "scorer":
        from moco_core.plugins import get_registry

        task_type = reward.get("task_type")
        scorers = get_registry().scorers
        if task_type not in scorers:
            known = ", ".join(sorted(scorers)) or "none installed"
            raise MocoError(f"training.reward.task_type: no scorer for {task_type!r} (known: {known})")
        return "answer"
    if kind == "registered":
        name = reward.get("name")
        if name not in _registered:
            known = ", ".join(sorted(_registered)) or "none registered"
            raise MocoError(f"training.reward.name: no reward registered as {name!r} (known: {known})")
        return None
    raise MocoError(f"training.reward.type: unknown reward type {kind!r} (expected scorer or registered)")


def example_from_row(row: dict[str, Any], index: int, task_type: str) -> Example:
    """The scoring hook's view of a training row: gold fields become an ``Example``."""
    extra = dict(row.get("extra") or {})
    extra.update({k: v for k, v in row.items() if k not in EXAMPLE_FIELDS and k not in ("completion", "system")})
    return Example(
        index=index,
        id=str(row.get("id", index)),
        question=str(row.get("question", row["prompt"])),
        answer=row.get("answer"),
        task_type=task_type,
        choices=row.get("choices"),
        prompt=row["prompt"],
        extra=extra,
    )


def reward_function(reward: dict[str, Any], hook: Any) -> RewardFunction:
    """The callable behind a validated reward description."""
    if reward["type"] == "registered":
        return _registered[reward["name"]]
    task_type = reward["task_type"]

    def score(completions: list[str], rows: list[dict[str, Any]]) -> list[float]:
        from moco_core.config import ScoringConfig

        examples = [example_from_row(row, i, task_type) for i, row in enumerate(rows)]
        scores = hook.moco_score(task_type=task_type, examples=examples, outputs=completions, options=ScoringConfig())
        if scores is None:
            raise MocoError(f"training.reward.task_type: no scorer answered for {task_type!r}")
        return [float(s) for s in scores]

    return score
