"""Parameter models of the logit-level methods (pydantic only, so registering stays cheap)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class LogitFusionParams(BaseModel):
    """``weights`` one per pool model in pool order (uniform when omitted); ``space`` says what is
    averaged: next-token probabilities (a mixture) or logits (a product of experts)."""

    model_config = ConfigDict(extra="forbid")

    weights: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] | None = Field(
        None, description="one weight per pool model, in pool order; uniform when omitted"
    )
    space: Literal["prob", "logit"] = Field(
        "prob", description="average probabilities (a mixture) or logits (a product of experts)"
    )
    vocabulary: Literal["shared", "union", "byte"] = Field(
        "shared",
        description="shared: one tokenizer required; union: models with different tokenizers meet on a union "
        "vocabulary of token byte strings (prob space only); byte: any tokenizers, decoded one byte at a time "
        "from each model's exact next-byte distribution (Phan et al. 2024; prob or logit space; "
        "max_new_tokens counts the heaviest model's tokens)",
    )


class LogitContrastiveParams(BaseModel):
    """Top ``k`` and bottom ``k`` members by dev score (k at most half the pool); ``alpha`` scales the
    contrast (the original's ``lambda_``); ``space`` says whether logits or probabilities are contrasted."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(1, ge=1, description="members in the expert (top by dev score) and amateur (bottom) groups")
    alpha: float = Field(0.2, allow_inf_nan=False, description="strength of the contrast (the original's lambda_)")
    space: Literal["logit", "prob"] = Field("logit", description="contrast logits or probabilities")
    vocabulary: Literal["shared", "union", "byte"] = Field(
        "shared",
        description="shared: one tokenizer required; union: align different tokenizers (prob space only); "
        "byte: any tokenizers, decoded one byte at a time from exact next-byte distributions (Phan et al. 2024; "
        "either space; max_new_tokens counts the dev-best model's tokens)",
    )
