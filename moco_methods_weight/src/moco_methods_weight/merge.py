"""merge: any mergekit merge method by name, so a plain merge recipe sits in the same grid as the
collaboration methods.

The recipe is checked against mergekit's own method specs before any model loads; the merged
folder is content-addressed by recipe, so every run asking for the same merge reuses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from moco_core.config import ModelConfig
from moco_core.errors import MocoError
from moco_core.merging import check_merge_request, merge_output_dir, merge_recipe
from moco_core.method import Method, MethodContext
from moco_core.types import Example, MergeJob, Prediction
from moco_core.validation import RunPlan
from moco_methods_weight.inputs import add_model, check_inputs, members, split_base


class Merge(Method):
    """Merges the pool once in ``prepare``; the merged model answers the test split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.inputs, self.base = self.check_pool(members(ctx), self.params)
        self.model = ""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        cls.check_pool(plan.config.models, plan.params)

    @staticmethod
    def check_pool(models: Sequence[ModelConfig], p: Any) -> tuple[list[str], str | None]:
        """The recipe against the pool: input count, weights, tensor shapes; returns (inputs, base)."""
        inputs, base = split_base(models, p.base_model)
        try:
            check_merge_request(p.method, p.parameters, base is not None, len(inputs))
        except MocoError as exc:
            raise MocoError(f"params: {exc}") from None
        if p.weights is not None and len(p.weights) != len(inputs):
            raise MocoError(
                f"params.weights: expected {len(inputs)} weights (one per input model), got {len(p.weights)}"
            )
        check_inputs(models, inputs, base)
        return inputs, base

    def job(self) -> MergeJob:
        pool = self.ctx.pool
        job = MergeJob(
            models=[pool.resolved_path(n) for n in self.inputs],
            output_dir="",
            method=self.params.method,
            base_model=self.base,
            weights=self.params.weights,
            parameters=dict(self.params.parameters),
            dtype=pool.dtype(),
        )
        job.output_dir = str(merge_output_dir(merge_recipe(job)))
        return job

    def prepare(self) -> None:
        folder = self.ctx.merge(self.job())
        self.model = add_model(self.ctx, f"merge:{self.params.method}", folder, self.inputs[0])
        self.ctx.metrics["merged_model_path"] = folder
        self.ctx.metrics["merge"] = {"method": self.params.method, "inputs": self.inputs, "base_model": self.base}

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.model, examples)
        return [Prediction(output=g.text, extras={"merged": self.model}) for g in generations]
