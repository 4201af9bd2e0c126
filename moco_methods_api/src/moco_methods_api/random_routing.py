"""random_routing: the chance baseline of every routing paper, seeded per query."""

from __future__ import annotations

import hashlib

from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_methods_api.routing import routed_predictions
from moco_methods_api.usage import UsageTally


def draw(seed: int, example: Example, count: int) -> int:
    """A uniform index from the run seed and the item alone, so chunking and resuming never change it."""
    digest = hashlib.sha256(f"{seed}\x00{example.index}\x00{example.id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


class RandomRouting(Method):
    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.tally = UsageTally(ctx, ctx.pool.names)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        names = self.ctx.pool.names
        chosen = [names[draw(self.ctx.settings.seed, e, len(names))] for e in examples]
        return routed_predictions(self.ctx, self.tally, examples, chosen)
