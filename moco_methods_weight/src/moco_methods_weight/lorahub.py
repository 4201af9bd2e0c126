"""LoraHub: a weighted composition of LoRA adapters found by gradient-free search on a few dev items.

The composed adapter is ``(Σ w_i B_i)(Σ w_i A_i)`` (A and B combined linearly, as the original);
nevergrad's NGOpt starts from w = 0 inside ``[-bound, bound]^n`` and minimises
``(1 − mean dev score on the first dev_examples items) + l1 · mean |w_i|``.  Each candidate is
merged into the base in memory and swapped into one resident model; only the result is written.
"""

from __future__ import annotations

import numpy as np

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_core.weight_space import LoraSpace, check_lora_pool
from moco_methods_weight.inputs import lora_members, members
from moco_methods_weight.search import WeightSearch


class Lorahub(Method):
    """Searches adapter weights in ``prepare``; the composed model answers the test split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.base = check_lora_pool(lora_members(members(ctx)), self.params.base_model)
        self.model = ""
        self.losses: list[float] = []

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_lora_pool(lora_members(plan.config.models), plan.params.base_model)

    def prepare(self) -> None:
        import nevergrad as ng

        pool, p = self.ctx.pool, self.params
        names = list(pool.names)
        space = LoraSpace([pool.config(n).path for n in names], self.base, pool.dtype())
        dev = self.ctx.dataset.dev[: p.dev_examples]
        settings = {"budget": p.budget, "bound": p.bound, "l1": p.l1, "dev_examples": len(dev)}
        search = WeightSearch(self.ctx, space, "lorahub", settings, names[0], dev=dev)
        count = len(names)
        parametrization = ng.p.Array(init=np.zeros(count), lower=-p.bound, upper=p.bound)
        parametrization.random_state = np.random.RandomState(self.ctx.settings.seed % 2**32)
        optimizer = ng.optimizers.NGOpt(parametrization=parametrization, budget=p.budget)

        def loss(weights: np.ndarray) -> float:
            value = (1.0 - search.score(weights)) + p.l1 * float(np.mean(np.abs(weights)))
            self.losses.append(value)
            return value

        weights = [float(w) for w in optimizer.minimize(loss).value]
        self.model = search.finish(weights, "lorahub")
        self.ctx.metrics.update(
            {"lorahub_weights": dict(zip(names, weights, strict=True)), "lorahub_losses": self.losses}
        )

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.model, examples)
        return [Prediction(output=g.text, extras={"model": self.model}) for g in generations]
