"""logit_fusion: the pool decodes as one model whose next-token distribution is the weighted
average of the members' distributions.

In probability space this is a mixture (any member can make a token likely); in logit space it
is a product of experts (a token needs every weighted member's support).  Averaging the
members' log-probabilities equals averaging their logits up to a per-row constant, which the
final normalisation removes, so the engine's log-probabilities serve both spaces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moco_core.backends.hf import row_seed
from moco_core.cache import cache_key
from moco_core.engines.decoding import load_joint_decoder
from moco_core.errors import MocoError
from moco_core.method import Method, MethodContext
from moco_core.pool import CHUNK_BATCHES
from moco_core.types import Example, Generation, GenerationRequest, Prediction


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
    """Joint decoding from the fused distribution; every answer is cached under the whole pool."""

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        self.names = ctx.pool.names
        self.weights = fusion_weights(self.params.weights, len(self.names))

    def _key(self, prompt: str) -> str:
        pool = self.ctx.pool
        return cache_key(
            kind="joint",
            method="logit_fusion",
            models=[pool.identity(n) for n in self.names],
            system_prompts=[pool.config(n).system_prompt for n in self.names],
            weights=self.weights,
            space=self.params.space,
            prompt=prompt,
            settings=self.ctx.settings.cache_fields(),
        )

    def predict(self, examples: list[Example]) -> list[Prediction]:
        pool = self.ctx.pool
        settings = self.ctx.settings
        keys = [self._key(e.prompt) for e in examples]
        texts = {k: v["text"] for k, v in pool.cache.get_many(list(dict.fromkeys(keys))).items()}
        missing = list({k: e.prompt for k, e in zip(keys, examples, strict=True) if k not in texts}.items())
        if missing:
            decoder = load_joint_decoder(pool, self.names)
            system_prompts = [pool.config(n).system_prompt for n in self.names]
            space = self.params.space

            def combine(log_probs: list[torch.Tensor]) -> torch.Tensor:
                return fuse(log_probs, self.weights, space)

            chunk = pool.batch_size * CHUNK_BATCHES
            for start in range(0, len(missing), chunk):
                part = missing[start : start + chunk]
                prompts = [prompt for _, prompt in part]
                seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in prompts]
                outputs = decoder.decode(decoder.render(prompts, system_prompts), combine, settings, seeds)
                made = {key: text for (key, _), text in zip(part, outputs, strict=True)}
                pool.cache.put_many({k: Generation(text=t).to_json() for k, t in made.items()})
                texts.update(made)
                pool.stats.made += len(part)
        pool.stats.cached += len(examples) - len(missing)
        return [Prediction(output=texts[k], extras={"weights": self.weights}) for k in keys]
