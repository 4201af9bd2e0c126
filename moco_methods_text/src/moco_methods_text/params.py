"""Parameter models of the text-level methods (light: imported at registration)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MajorityVoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tie_break: Literal["dev", "random"] = Field(
        default="dev", description="ties go to the answer of the best dev-ranked model, or at random (seeded)"
    )
    samples_per_model: int = Field(default=1, ge=1, description="sampled answers per model, each one vote")
