"""Greedy model soup (Wortsman et al. 2022): a uniform weight average grown one model at a time.

Models are tried best dev score first; a candidate joins the soup only if the averaged model
scores at least as well on dev as the soup without it, so the soup is never worse on dev than
the single best model.  Every tried soup is built in memory into one resident model (the weight
search engine) and scored through the pool's cached generation; only the final soup is written,
keyed by its recipe, so a resumed or repeated run reuses it and its cached answers.
"""

from __future__ import annotations

from typing import Any

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_core.weight_space import LinearSpace
from moco_methods_weight.inputs import check_inputs, members
from moco_methods_weight.search import WeightSearch


def soup_name(members: list[str]) -> str:
    """The pool name of the uniform average of ``members`` (readable in logs and metrics)."""
    return f"soup({'+'.join(members)})"


def uniform_weights(names: list[str], soup: list[str]) -> list[float]:
    """Weights over ``names`` (the pool order): 1/|soup| on the soup's members, 0 elsewhere."""
    return [1.0 / len(soup) if name in soup else 0.0 for name in names]


class GreedySoup(Method):
    """Builds the soup on dev in ``prepare``; the final soup model answers the test split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        check_inputs(members(ctx), ctx.pool.names)
        self.soup: list[str] = []
        self.soup_model = ""
        self.search: WeightSearch | None = None

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_inputs(plan.config.models, [m.name for m in plan.config.models])

    def prepare(self) -> None:
        pool = self.ctx.pool
        names = list(pool.names)
        ranking = self.ctx.dev_ranking()
        best = self.ctx.dev_scores()[ranking[0]]
        self.soup, self.soup_model = [ranking[0]], ranking[0]
        history: list[dict[str, Any]] = [
            {"candidate": ranking[0], "members": list(self.soup), "dev_score": best, "accepted": True}
        ]
        space = LinearSpace([pool.resolved_path(n) for n in names], pool.dtype())
        self.search = WeightSearch(self.ctx, space, "greedy_soup", {}, like=ranking[0])
        for candidate in ranking[1:]:
            tried = [*self.soup, candidate]
            score = self.search.score(uniform_weights(names, tried))
            accepted = score >= best
            history.append({"candidate": candidate, "members": tried, "dev_score": score, "accepted": accepted})
            if accepted:
                self.soup, best = tried, score
        if len(self.soup) > 1:
            self.soup_model = self.search.finish(uniform_weights(names, self.soup), soup_name(self.soup))
        else:
            self.search.slot.release()
        self.ctx.metrics["soup"] = list(self.soup)
        self.ctx.metrics["soup_model"] = self.soup_model
        self.ctx.metrics["soup_model_path"] = pool.resolved_path(self.soup_model)
        self.ctx.metrics["soup_dev_score"] = best
        self.ctx.metrics["soup_history"] = history

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.soup_model, examples)
        return [Prediction(output=g.text, extras={"soup": list(self.soup)}) for g in generations]
