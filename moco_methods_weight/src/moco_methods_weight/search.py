"""Dev scoring of weight-space candidates, shared by the searching methods.

A candidate answers through one in-memory pool member (``CandidateSlot``), so its dev answers
come from the pool's batched, cached generation; its mean dev score is kept by recipe, so a
candidate a search returns to is never scored twice.  ``finish`` writes only the chosen model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moco_core.cache import cache_key
from moco_core.method import MethodContext
from moco_core.types import Example
from moco_core.weight_space import CandidateSlot, write_candidate
from moco_methods_weight.inputs import add_model


class WeightSearch:
    """Scores vectors of ``space`` on dev (or ``dev``) and writes the chosen one."""

    def __init__(
        self,
        ctx: MethodContext,
        space: Any,
        method: str,
        settings: dict[str, Any],
        like: str,
        dev: Sequence[Example] | None = None,
    ) -> None:
        self.ctx = ctx
        self.space = space
        self.like = like
        self.dev = list(ctx.dataset.dev if dev is None else dev)
        search = {"method": method, "seed": ctx.settings.seed, **settings}
        self.slot = CandidateSlot(ctx.pool, f"{method}:candidate", space, search, ctx.pool.config(like))
        self.scores: dict[str, float] = {}
        self.evaluated: list[dict[str, Any]] = []

    def score(self, vector: Sequence[float]) -> float:
        name = self.slot.point(vector)
        key = cache_key(**self.slot.recipe)
        if key not in self.scores:
            outputs = [g.text for g in self.ctx.answer(name, self.dev)]
            values = self.ctx.score(self.dev, outputs)
            self.scores[key] = sum(values) / len(values) if values else 0.0
            self.evaluated.append({"weights": list(self.slot.vector), "dev_score": self.scores[key]})
        return self.scores[key]

    def score_all(self, vectors: Sequence[Sequence[float]]) -> list[float]:
        return [self.score(v) for v in vectors]

    def finish(self, vector: Sequence[float], name: str) -> str:
        """Write the chosen candidate as a folder, add it to the pool as ``name`` and return ``name``."""
        self.slot.point(vector)
        self.slot.release()  # free the resident candidate before the buffer the folder is written from
        weights = self.space.materialize(self.slot.vector)
        folder = write_candidate(self.space, weights, self.slot.recipe, self.ctx.pool.dtype())
        self.ctx.metrics["model_path"] = folder
        self.ctx.metrics["search_evaluations"] = len(self.evaluated)
        return add_model(self.ctx, name, folder, self.like)
