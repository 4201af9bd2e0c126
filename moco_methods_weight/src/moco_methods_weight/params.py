"""Parameter models of the weight-level methods (pydantic only, so registering stays cheap)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from moco_core.engines.pso import PSOParams
from moco_core.errors import MocoError


class MergeParams(BaseModel):
    """``method`` is any mergekit merge method name; ``base_model`` a pool member's name or a model
    path (a member named as base is not merged as an input); ``weights`` one per input model;
    ``parameters`` the method's mergekit parameters (a per-model one may be a list, one per input)."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="a mergekit merge method, e.g. linear, task_arithmetic, ties, slerp")
    base_model: str | None = Field(None, description="a pool member's name or a model path; not merged as an input")
    weights: list[float] | None = Field(None, description="one weight per input model")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="the method's mergekit parameters (a list gives one per input)"
    )

    @model_validator(mode="after")
    def _mergekit_knows_it(self) -> MergeParams:
        from moco_core.merging import check_merge_request

        try:
            check_merge_request(self.method, self.parameters, self.base_model is not None)
        except MocoError as exc:
            raise MocoError(f"params: {exc}") from None
        return self


def _dare_pso() -> PSOParams:
    return PSOParams(max_iterations=5)


class DareTiesParams(BaseModel):
    """mergekit dare_ties onto ``base_model``; ``weights`` uniform, or ``search`` (PSO on dev over
    positions softmaxed into weights)."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(description="the pool member (name) or model path the task vectors are taken from")
    density: float = Field(0.5, gt=0.0, le=1.0, description="fraction of each task vector DARE keeps")
    weights: Literal["uniform", "search"] = Field(
        "uniform", description="equal weights, or searched by PSO on dev (softmaxed particle positions)"
    )
    pso: PSOParams = Field(default_factory=_dare_pso, description="particle swarm settings of the weight search")


class ModelSwarmsParams(BaseModel):
    """The pool's members (full models, or LoRA adapters over one base) are the particles."""

    model_config = ConfigDict(extra="forbid")

    pso: PSOParams = Field(default_factory=PSOParams, description="particle swarm settings (particles: the pool)")
    base_model: str | None = Field(None, description="base of LoRA adapter members (default: their adapter_config)")


class LorahubParams(BaseModel):
    """Nevergrad NGOpt over one weight per adapter in ``[-bound, bound]``, from 0, minimising
    (1 − dev score on the first ``dev_examples`` items) + ``l1`` × mean |w|."""

    model_config = ConfigDict(extra="forbid")

    dev_examples: int = Field(5, ge=1, description="dev items the objective scores (the original uses 5)")
    budget: int = Field(20, ge=1, description="objective evaluations of the gradient-free search")
    bound: float = Field(1.5, gt=0.0, description="each adapter weight lies in [-bound, bound]")
    l1: float = Field(0.05, ge=0.0, description="L1 penalty on the mean absolute weight")
    base_model: str | None = Field(None, description="base model of the adapters (default: their adapter_config)")


class ExpoParams(BaseModel):
    """x = top-k average + alpha·(top-k average − bottom-k average); ``alpha_search`` picks alpha on dev."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(1, ge=1, description="members averaged into the strong (top by dev) and weak (bottom) models")
    alpha: float = Field(0.3, description="extrapolation strength past the strong model")
    alpha_search: list[float] = Field(default_factory=list, description="alphas tried on dev (empty: use alpha)")
