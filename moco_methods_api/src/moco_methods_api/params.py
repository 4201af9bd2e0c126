"""Parameter models of the API-level methods (light: imported at registration)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PromptRoutingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    router: str | None = Field(default=None, description="pool model that routes; default: the dev-best model")
