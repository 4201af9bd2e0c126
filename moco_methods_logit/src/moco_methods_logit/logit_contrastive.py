"""logit_contrastive: decode from the dev-best member pushed away from the weakest members.

Members are ranked by dev score (stable, ties to the lower index); with T the top k and B the
bottom k, each step samples from ``s_1 + alpha·(Σ_T s − Σ_B s)`` where s_1 is the dev-best's.
In logit space (the original) s are logits; the engine's log-probabilities differ from them by
one constant per model and row, and T and B have the same size, so the constants cancel up to
a per-row shift that normalisation removes.  In probability space (the paper's formula) s are
probabilities, negative entries are clipped to 0 and the rest renormalised.

With ``vocabulary: byte`` (Phan et al. 2024, arXiv:2410.09303) s are the members' exact
next-byte distributions over 256 bytes and a stop symbol; both spaces stay well defined there,
since every member's distribution is normalised over the same 257 symbols.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.types import Example, Prediction
from moco_core.validation import RunPlan
from moco_methods_logit.joint import check_vocabulary, decode_cached


def contrast(log_probs: Sequence[torch.Tensor], top: int, bottom: int, alpha: float, space: str) -> torch.Tensor:
    """Contrastive log-probabilities of members ordered best first: the first ``top`` are T, the
    last ``bottom`` are B; member 0 is the anchor s_1."""
    stacked = torch.stack(list(log_probs))
    values = stacked if space == "logit" else stacked.exp()
    scores = values[0] + alpha * (values[:top].sum(dim=0) - values[len(values) - bottom :].sum(dim=0))
    if space == "logit":
        return torch.log_softmax(scores, dim=-1)
    clipped = scores.clamp(min=0.0)
    return torch.log(clipped / clipped.sum(dim=-1, keepdim=True))


def check_k(k: int, count: int) -> None:
    """Top and bottom k must not overlap: k is at most half the pool."""
    if k > count // 2:
        raise MocoError(f"params.k: at most half the pool ({count // 2} of {count} models), got {k}")


class LogitContrastive(Method):
    """Ranks the pool on dev in ``prepare``, then decodes jointly from top, bottom and anchor.

    Rows draw from the dev-best member's random stream, so alpha 0 gives exactly its own text.
    """

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        check_k(self.params.k, len(ctx.pool))
        self.order: list[str] = []

    @classmethod
    def check(cls, plan: RunPlan) -> None:
        check_k(plan.params.k, len(plan.config.models))
        check_vocabulary("logit_contrastive", plan.config.models, plan.params.vocabulary, plan.params.space)

    def prepare(self) -> None:
        ranking = self.ctx.dev_ranking()
        k = self.params.k
        self.order = ranking[:k] + ranking[len(ranking) - k :]
        self.ctx.metrics["contrast_top"] = ranking[:k]
        self.ctx.metrics["contrast_bottom"] = ranking[len(ranking) - k :]

    def predict(self, examples: list[Example]) -> list[Prediction]:
        if not self.order:
            self.prepare()
        k, alpha, space = self.params.k, self.params.alpha, self.params.space

        def combine(log_probs: list[torch.Tensor]) -> torch.Tensor:
            return contrast(log_probs, k, k, alpha, space)

        recipe = {"k": k, "alpha": alpha, "space": space}
        vocabulary = self.params.vocabulary
        texts = decode_cached(self.ctx, self.order, "logit_contrastive", combine, examples, vocabulary, **recipe)
        extras = {"top": self.order[:k], "bottom": self.order[k:]}
        return [Prediction(output=t, extras=extras) for t in texts]
