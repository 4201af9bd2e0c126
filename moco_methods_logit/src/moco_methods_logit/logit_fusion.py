"""logit_fusion: the pool decodes as one model whose next-token distribution is the weighted
average of the members' distributions.

In probability space this is a mixture (any member can make a token likely); in logit space it
is a product of experts (a token needs every weighted member's support).  Averaging the
members' log-probabilities equals averaging their logits up to a per-row constant, which the
final normalisation removes, so the engine's log-probabilities serve both spaces.

Across tokenizers, ``vocabulary: union`` fuses on the union of the members' token byte strings
(GaC, Yu et al. 2024) and ``vocabulary: byte`` fuses each member's exact next-byte distribution
(Phan et al. 2024, arXiv:2410.09303), one byte per step, in either space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_logit.joint import check_vocabulary, decode_cached


def fusion_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """The weights normalised to sum to 1 (uniform when None), checked against the pool size."""
    if weights is None:
        return [1.0 / count] * count
    if len(weights) != count:
        raise MocoError(f"params.weights: expected {count} weights (one per pool model), got {len(weights)}")
    total = float(sum(weights))
    if total <= 0:
        raise MocoError("params.weights: at least one weight must be positive")
    return [float(w) / total for w in weights]


def fuse(log_probs: list[torch.Tensor], weights: Sequence[float], space: str) -> torch.Tensor:
    """Fused log-probabilities ``(batch, vocab)`` of the members' ``log_probs``."""
    stacked = torch.stack(log_probs)
    w = torch.tensor(weights, dtype=stacked.dtype, device=stacked.device).view(-1, 1, 1)
    if space == "prob":
        return torch.logsumexp(stacked + w.log(), dim=0)
    weighted = torch.where(w > 0, stacked * w, torch.zeros_like(stacked))
    return torch.log_softmax(weighted.sum(dim=0), dim=-1)


class LogitFusion(Method):
    """Joint decoding from the fused distribution; every answer is cached under the whole pool.

    Rows draw from the random stream of the heaviest member (the first on ties), so weights
    (1, 0) at any temperature give exactly member 1's own text.
    """

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.weights = fusion_weights(self.params.weights, len(self.names))

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        fusion_weights(plan.params.weights, len(plan.config.models))
        check_vocabulary("logit_fusion", plan.config.models, plan.params.vocabulary, plan.params.space)

    def predict(self, examples: list[Example]) -> list[Prediction]:
        space = self.params.space

        def combine(log_probs: list[torch.Tensor]) -> torch.Tensor:
            return fuse(log_probs, self.weights, space)

        texts = decode_cached(
            self.ctx,
            self.names,
            "logit_fusion",
            combine,
            examples,
            self.params.vocabulary,
            anchor=self.weights.index(max(self.weights)),
            weights=self.weights,
            space=space,
        )
        return [Prediction(output=t, extras={"weights": self.weights}) for t in texts]
