"""Parameter models of the logit-level methods (pydantic only, so registering stays cheap)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class LogitFusionParams(BaseModel):
    """``weights`` one per pool model in pool order (uniform when omitted); ``space`` says what is
    averaged: next-token probabilities (a mixture) or logits (a product of experts)."""

    model_config = ConfigDict(extra="forbid")

    weights: list[Annotated[float, Field(ge=0.0)]] | None = None
    space: Literal["prob", "logit"] = "prob"
