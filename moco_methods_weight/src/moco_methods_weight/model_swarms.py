"""Model Swarms: the pool's members are particles that PSO moves through weight space.

Every position the swarm visits is a linear combination of the members' weights (the update only
adds and scales), so the search runs PSO on coefficient vectors and builds a candidate's tensors
from the members only when it is scored: each candidate is exactly the PSO update applied to its
parents' tensors, built by one matrix-vector product straight into the one resident model, and
memory stays at n state dicts plus that model.  LoRA members (adapters over one base) are
combined on their A and B factors the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moco_core.config import ModelConfig
from moco_core.engines.pso import particle_swarm
from moco_core.method import Method, MethodContext
from moco_core.models import is_adapter_folder
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_core.weight_space import LinearSpace, LoraSpace, check_lora_pool
from moco_methods_weight.inputs import check_inputs, lora_members, members


class ModelSwarms(Method):
    """Searches on dev in ``prepare``; the global best answers the test split."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.lora, self.base = self.check_pool(members(ctx), self.params.base_model)
        self.model = ""

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        cls.check_pool(plan.config.models, plan.params.base_model)

    @staticmethod
    def check_pool(models: Sequence[ModelConfig], base_model: str | None) -> tuple[bool, str | None]:
        """(LoRA pool?, its base): adapters over one base, or full models of one shape."""
        if any(is_adapter_folder(m.path) for m in models):
            return True, check_lora_pool(lora_members(models), base_model)
        check_inputs(models, [m.name for m in models])
        return False, None

    def _space(self) -> LinearSpace | LoraSpace:
        pool = self.ctx.pool
        if self.lora:
            return LoraSpace([pool.config(n).path for n in pool.names], self.base or "", pool.dtype())
        return LinearSpace([pool.resolved_path(n) for n in pool.names], pool.dtype())

    def prepare(self) -> None:
        from moco_methods_weight.search import WeightSearch

        pool = self.ctx.pool
        names = list(pool.names)
        count = len(names)
        search = WeightSearch(self.ctx, self._space(), "model_swarms", {"pso": self.params.pso.model_dump()}, names[0])
        result = particle_swarm(
            list(np.eye(count)),
            search.score_all,
            self.params.pso,
            seed=self.ctx.settings.seed,
            initial_velocity="toward_other",
        )
        self.result = result
        best = [float(c) for c in result.best]
        self.model = search.finish(best, "model_swarms(best)")
        self.ctx.metrics.update(
            {
                "swarm_best_weights": dict(zip(names, best, strict=True)),
                "swarm_best_dev_score": result.best_fitness,
                "swarm_iterations": result.iterations,
                "swarm_history": [h["global_best"] for h in result.history],
            }
        )

    def predict(self, examples: list[Example]) -> list[Prediction]:
        generations = self.ctx.answer(self.model, examples)
        return [Prediction(output=g.text, extras={"model": self.model}) for g in generations]
