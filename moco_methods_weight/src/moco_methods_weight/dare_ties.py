"""DARE-TIES onto a base: task vectors pruned at random to ``density``, rescaled, sign-elected.

Uniform weights go through the merge hook (mergekit ``run_merge``, a content-addressed folder).
With ``weights: search`` PSO searches positions on dev, softmaxed into weights (the original's
parameterisation); each candidate is merged in memory by mergekit and swapped into one resident
model, and only the best is written.
"""

from __future__ import annotations

import numpy as np

from moco_core.engines.pso import particle_swarm
from moco_core.errors import MocoError
from moco_core.merging import merge_output_dir, merge_recipe
from moco_core.method import Method, MethodContext
from moco_core.types import Example, MergeJob, Prediction
from moco_core.validation import RunPlan
from moco_core.weight_space import MergekitSpace
from moco_methods_weight.inputs import add_model, check_inputs, members, split_base
from moco_methods_weight.search import WeightSearch


def softmax(position: np.ndarray) -> list[float]:
    shifted = np.exp(position - np.max(position))
    return [float(v) for v in shifted / shifted.sum()]


class DareTies(Method):
    """Merges (or searches, then merges) in ``prepare``; the merged model answers the test split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.inputs, self.base = split_base(members(ctx), self.params.base_model)
        check_inputs(members(ctx), self.inputs, self.base)
        self.model = ""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        inputs, base = split_base(plan.config.models, plan.params.base_model)
        check_inputs(plan.config.models, inputs, base)
        if plan.params.weights == "search" and not plan.dataset.dev:
            raise MocoError(
                f"dataset: {plan.dataset.name} has no dev split, which dare_ties needs (params.weights: search "
                "picks the weights on dev); give the data a dev split"
            )

    def _uniform(self) -> str:
        pool = self.ctx.pool
        job = MergeJob(
            models=[pool.resolved_path(n) for n in self.inputs],
            output_dir="",
            method="dare_ties",
            base_model=self.base,
            weights=[1.0 / len(self.inputs)] * len(self.inputs),
            parameters={"density": self.params.density, "random_seed": self.ctx.settings.seed},
            dtype=pool.dtype(),
        )
        job.output_dir = str(merge_output_dir(merge_recipe(job)))
        folder = self.ctx.merge(job)
        self.ctx.metrics["model_path"] = folder
        self.ctx.metrics["dare_ties_weights"] = job.weights
        return add_model(self.ctx, "dare_ties(uniform)", folder, self.inputs[0])

    def _search(self) -> str:
        pool, p = self.ctx.pool, self.params
        space = MergekitSpace(
            [pool.resolved_path(n) for n in self.inputs],
            self.base or "",
            "dare_ties",
            {"density": p.density},
            pool.dtype(),
            seed=self.ctx.settings.seed,
        )
        search = WeightSearch(self.ctx, space, "dare_ties", {"pso": p.pso.model_dump()}, self.inputs[0])
        rng = np.random.default_rng(self.ctx.settings.seed)
        count = len(self.inputs)
        start = [np.zeros(count)] + [rng.normal(size=count) for _ in range(p.pso.population - 1)]
        result = particle_swarm(
            start, lambda xs: search.score_all([softmax(x) for x in xs]), p.pso, seed=self.ctx.settings.seed
        )
        weights = softmax(result.best)
        self.ctx.metrics["dare_ties_weights"] = weights
        self.ctx.metrics["search_best_dev_score"] = result.best_fitness
        self.ctx.metrics["search_history"] = [h["global_best"] for h in result.history]
        return search.finish(weights, "dare_ties(searched)")

    def prepare(self) -> None:
        self.model = self._search() if self.params.weights == "search" else self._uniform()

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.model, examples)
        return [Prediction(output=g.text, extras={"model": self.model}) for g in generations]
