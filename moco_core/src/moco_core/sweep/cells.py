"""Expanding a sweep into cells, and reading what each cell's directory says about its state.

A cell's state lives only in its run directory (``metrics.json`` = done, ``error.json`` =
failed, predictions without metrics = partial), so a sweep killed at any point resumes from
the files alone and two sweeps never disagree about what is finished.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moco_core.config import DatasetConfig, RunConfig, parse_config, read_config_file
from moco_core.errors import MocoError
from moco_core.report.collect import read_run_metrics
from moco_core.runner import CONFIG, METRICS, PREDICTIONS
from moco_core.sweep.config import MethodAxis, PoolAxis, SweepConfig, safe_label

CELLS = "cells"
CELL_INFO = "cell.json"
ERROR = "error.json"
LOG = "run.log"
State = Literal["done", "failed", "partial", "pending", "changed"]


@dataclass
class Cell:
    """One run of the grid: its axis labels, its full run config and its directory."""

    name: str
    method: str
    method_key: str
    dataset: str
    pool: str
    seed: int
    config: RunConfig
    control_for: list[str] = field(default_factory=list)
    """Methods this cell is the compute-matched control of (``controls: compute_matched``)."""

    @property
    def directory(self) -> Path:
        return Path(self.config.output_dir or "")

    @property
    def group(self) -> tuple[str, str, int]:
        """Pool, dataset and seed: the cells whose methods a compute-matched control is sized for."""
        return (self.pool, self.dataset, self.seed)

    def info(self) -> dict[str, Any]:
        """What ``cell.json`` records: the axes, so a report can group cells without re-reading the sweep."""
        info: dict[str, Any] = {
            "cell": self.name,
            "method": self.method,
            "method_key": self.method_key,
            "dataset": self.dataset,
            "pool": self.pool,
            "seed": self.seed,
            "models": [m.name for m in self.config.models],
        }
        if self.control_for:
            info["control_for"] = self.control_for
        return info


@dataclass
class CellStatus:
    state: State
    score: float | None = None
    error: str | None = None
    predictions: int = 0


def _absolute(path: str | None) -> str | None:
    """A relative path that exists here, made absolute, so a cell runs the same from any working directory."""
    if path is None or Path(path).is_absolute() or not Path(path).exists():
        return path
    return str(Path(path).resolve())


def _cell_config(sweep: SweepConfig, data: dict[str, Any], name: str) -> RunConfig:
    data["dataset"]["path"] = _absolute(data["dataset"].get("path"))
    data["dataset"]["data_dir"] = _absolute(data["dataset"].get("data_dir"))
    for model in data["models"]:
        model["path"] = _absolute(model["path"])
    return parse_config(data, f"sweep cell {name}")


def make_cell(
    sweep: SweepConfig, sweep_dir: Path, pool: PoolAxis, dataset: DatasetConfig, seed: int, method: MethodAxis
) -> Cell:
    """The cell of one method on one pool, dataset and seed: ``base`` plus those axes."""
    pool_label, dataset_label = safe_label(pool.name), safe_label(dataset.label)
    name = f"{pool_label}--{method.name}--{dataset_label}--s{seed}"
    data = copy.deepcopy(sweep.base)
    data.update(
        method=method.method,
        params=copy.deepcopy(method.params),
        models=[m.model_dump() for m in pool.models],
        dataset=dataset.model_dump(exclude_unset=True),
        output_dir=str(sweep_dir / CELLS / name),
    )
    data["generation"] = {**data.get("generation", {}), "seed": seed}
    config = _cell_config(sweep, data, name)
    return Cell(name, method.name, method.method, dataset_label, pool_label, seed, config)


def sweep_seeds(sweep: SweepConfig) -> list[int]:
    return sweep.seeds or [int(sweep.base.get("generation", {}).get("seed", 0))]


def expand(sweep: SweepConfig, sweep_dir: Path) -> list[Cell]:
    """Every cell of the grid, ordered pool by pool so a pool's models stay warm across methods."""
    return [
        make_cell(sweep, sweep_dir, pool, dataset, seed, method)
        for pool in sweep.pools
        for dataset in sweep.datasets
        for seed in sweep_seeds(sweep)
        for method in sweep.methods
    ]


def _same_config(directory: Path, config: RunConfig) -> bool:
    path = directory / CONFIG
    if not path.is_file():
        return True
    try:
        previous = parse_config(read_config_file(path), str(path))
    except MocoError:
        return False
    return previous.model_dump(exclude={"output_dir"}) == config.model_dump(exclude={"output_dir"})


def cell_status(cell: Cell) -> CellStatus:
    """What the cell's directory holds: finished metrics, a recorded error, some predictions, or nothing."""
    directory = cell.directory
    if not _same_config(directory, cell.config):
        return CellStatus("changed", error="its directory holds a run of a different config")
    damaged = None
    if (directory / METRICS).is_file():
        try:
            return CellStatus("done", score=float(read_run_metrics(directory)["score"]["mean"]))
        except MocoError as exc:
            damaged = f"{exc}; the next sweep rewrites it from the predictions"
    if (directory / ERROR).is_file():
        return CellStatus("failed", error=_recorded_error(directory / ERROR))
    predictions = directory / PREDICTIONS
    count = predictions.read_bytes().count(b"\n") if predictions.is_file() else 0
    return CellStatus("partial" if count else "pending", error=damaged, predictions=count)


def _recorded_error(path: Path) -> str:
    """The one-line error a failed cell recorded; a damaged ``error.json`` still reads as a failure."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{path} is damaged (rerun with --retry-failed)"
    error = found.get("error") if isinstance(found, dict) else None
    return str(error) if error else f"{path} records no error (rerun with --retry-failed)"
