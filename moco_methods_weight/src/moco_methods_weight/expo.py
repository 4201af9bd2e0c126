"""ExPO (weak-to-strong extrapolation): step from the weakest members through the strongest.

With the pool ranked by dev score, ``x = top + alpha·(top − bottom)`` where top and bottom are
the uniform averages of the best and worst k members.  The candidate is linear in the members'
weights, so every alpha of ``alpha_search`` is built in memory and scored on dev through one
resident model; only the chosen model is written.
"""

from __future__ import annotations

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_core.weight_space import LinearSpace
from moco_methods_weight.inputs import check_inputs, members
from moco_methods_weight.search import WeightSearch


def expo_coefficients(k: int, alpha: float) -> list[float]:
    """Coefficients over [top k..., bottom k...]: (1 + alpha)/k on the top, −alpha/k on the bottom."""
    return [(1.0 + alpha) / k] * k + [-alpha / k] * k


class Expo(Method):
    """Ranks on dev, picks alpha (fixed or searched on dev) and answers with the extrapolated model."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        check_inputs(members(ctx), ctx.pool.names)
        self.k = max(1, min(self.params.k, len(ctx.pool) // 2))
        self.model = ""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_inputs(plan.config.models, [m.name for m in plan.config.models])

    def prepare(self) -> None:
        ranking = self.ctx.dev_ranking()
        top, bottom = ranking[: self.k], ranking[len(ranking) - self.k :]
        members = top + bottom
        pool = self.ctx.pool
        space = LinearSpace([pool.resolved_path(n) for n in members], pool.dtype())
        search = WeightSearch(self.ctx, space, "expo", {"k": self.k}, like=top[0])
        alphas = list(self.params.alpha_search) or [self.params.alpha]
        scores = search.score_all([expo_coefficients(self.k, a) for a in alphas]) if len(alphas) > 1 else []
        alpha = alphas[scores.index(max(scores))] if scores else alphas[0]
        self.model = search.finish(expo_coefficients(self.k, alpha), f"expo(alpha={alpha})")
        self.ctx.metrics.update(
            {
                "expo_top": top,
                "expo_bottom": bottom,
                "expo_alpha": alpha,
                "alpha_scores": [[a, s] for a, s in zip(alphas, scores, strict=False)],
            }
        )

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.model, examples)
        return [Prediction(output=g.text, extras={"model": self.model}) for g in generations]
