"""The sweep file: a base run config plus the axes it is crossed over, every unknown key refused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moco_core.config import DatasetConfig, ModelConfig, format_validation_error, read_config_file
from moco_core.errors import MocoError
from moco_core.report.collect import CONTROL_LABEL

AXIS_KEYS = ("method", "params", "models", "dataset", "output_dir")
"""Run-config keys that come from the axes, so a ``base`` may not set them."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def safe_label(text: str) -> str:
    """A label usable as a path component: anything but letters, digits, ``.``, ``_``, ``-`` becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "_"


class MethodAxis(_Strict):
    """One method of the grid; ``label`` tells two settings of the same method apart."""

    method: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def name(self) -> str:
        return safe_label(self.label or self.method)


class PoolAxis(_Strict):
    """One named model pool of the grid."""

    name: str = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)


class RayConfig(_Strict):
    """Where Ray runs the cells: an existing cluster by ``address``, else a local Ray for the sweep."""

    address: str | None = Field(default=None, description="e.g. ray://head:10001 or auto; None starts a local Ray")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local Ray (default: all)")
    num_gpus: int | None = Field(default=None, ge=0, description="GPUs of a local Ray (default: all)")
    cpus_per_cell: float = Field(default=1.0, gt=0)
    gpus_per_cell: float | None = Field(default=None, ge=0, description="default: what the cell's pool needs")


class ControlsConfig(_Strict):
    """``controls: compute_matched``: after a pool's method cells on a dataset (and seed) finish, run the
    pool's dev-best model with self-consistency at each method's generated-token budget."""

    kind: Literal["compute_matched"] = "compute_matched"
    max_samples: int = Field(default=16, ge=1, description="largest N of a control's self-consistency")


class SweepConfig(_Strict):
    """A grid of runs: every method x dataset x pool x seed, each cell a run of ``base`` + its axes."""

    base: dict[str, Any] = Field(default_factory=dict)
    methods: list[MethodAxis] = Field(min_length=1)
    datasets: list[DatasetConfig] = Field(min_length=1)
    pools: list[PoolAxis] = Field(min_length=1)
    seeds: list[int] | None = Field(default=None, min_length=1)
    output_dir: str | None = None
    cache_dir: str | None = Field(default=None, description="generation cache shared by every cell")
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = Field(default_factory=RayConfig)
    controls: ControlsConfig | None = Field(default=None, description="compute_matched: add control cells")

    @field_validator("controls", mode="before")
    @classmethod
    def _controls_shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @field_validator("methods", mode="before")
    @classmethod
    def _method_keys(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"method": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("base")
    @classmethod
    def _base_has_no_axis_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in AXIS_KEYS:
            if key in value:
                raise ValueError(f"{key!r} comes from the axes (methods, datasets, pools); remove it from base")
        return value

    @model_validator(mode="after")
    def _unique_labels(self) -> SweepConfig:
        for axis, labels in (
            ("methods", [m.name for m in self.methods]),
            ("datasets", [safe_label(d.label) for d in self.datasets]),
            ("pools", [safe_label(p.name) for p in self.pools]),
        ):
            seen = {label for label in labels if labels.count(label) > 1}
            if seen:
                hint = " (give each a distinct label)" if axis == "methods" else ""
                raise ValueError(f"{axis}: {sorted(seen)[0]!r} appears twice{hint}")
        if self.controls is not None:
            taken = [m.name for m in self.methods if m.name.startswith(CONTROL_LABEL)]
            if taken:
                raise ValueError(f"methods: {taken[0]!r}: labels starting {CONTROL_LABEL!r} name the control cells")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds: a seed appears twice")
        return self

    def resolved_output_dir(self, source: str | Path) -> Path:
        return Path(self.output_dir or f"runs/sweep-{Path(source).stem}")


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and validate a sweep file (YAML or JSON) with one-line errors."""
    data = read_config_file(path)
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise MocoError(format_validation_error(exc, str(path), SweepConfig)) from None
