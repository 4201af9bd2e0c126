"""Choosing which cells run and handing them to an executor (in this process, or on Ray)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moco_core.errors import MocoError
from moco_core.sweep.cells import CELL_INFO, Cell, CellStatus, cell_status, expand
from moco_core.sweep.config import SweepConfig

SWEEP_FILE = "sweep.yaml"
Report = Callable[[Cell, CellStatus], None]


@dataclass
class SweepOutcome:
    """Every cell with its state after the sweep, and which of them this invocation ran."""

    directory: Path
    cells: list[tuple[Cell, CellStatus]]
    ran: list[str] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for _, status in self.cells if status.state == state)


def check_cells(cells: list[Cell]) -> None:
    """Every cell's method, parameters and pool, checked before any cell starts (one line, exit 2).

    Datasets are not loaded here (that can mean a download per dataset); a dataset that cannot
    load fails its cells, which are recorded and can be retried.
    """
    from moco_core.plugins import get_registry
    from moco_core.validation import check_pool, resolve_method, validate_params

    registry = get_registry()
    for cell in cells:
        try:
            spec = resolve_method(registry, cell.config.method)
            validate_params(spec, cell.config.params)
            check_pool(cell.config, spec, registry)
        except MocoError as exc:
            raise MocoError(f"pool {cell.pool}, method {cell.method}: {exc}") from None


def select(cells: list[Cell], retry_failed: bool) -> list[Cell]:
    """Cells to run now: failed ones with ``retry_failed``, else everything neither done nor failed."""
    chosen = []
    for cell in cells:
        state = cell_status(cell).state
        if (state == "failed") if retry_failed else state in ("pending", "partial", "changed"):
            chosen.append(cell)
    return chosen


def _write_manifest(sweep: SweepConfig, directory: Path, cells: list[Cell]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SWEEP_FILE).write_text(yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
    for cell in cells:
        cell.directory.mkdir(parents=True, exist_ok=True)
        (cell.directory / CELL_INFO).write_text(json.dumps(cell.info(), indent=2), encoding="utf-8")


def run_sweep(
    sweep: SweepConfig,
    source: str | Path,
    dry_run: bool = False,
    retry_failed: bool = False,
    executor: str | None = None,
    on_result: Report | None = None,
    ray_options: dict[str, Any] | None = None,
) -> SweepOutcome:
    """Expand, pick the cells to run, run them (unless ``dry_run``) and return every cell's state."""
    directory = sweep.resolved_output_dir(source)
    cells = expand(sweep, directory)
    check_cells(cells)
    if dry_run:
        return SweepOutcome(directory, [(c, cell_status(c)) for c in cells])
    todo = select(cells, retry_failed)
    _write_manifest(sweep, directory, cells)
    report = on_result or (lambda _cell, _status: None)
    cache_dir = str(Path(sweep.cache_dir).expanduser().resolve()) if sweep.cache_dir else None
    if (executor or sweep.executor) == "ray":
        from moco_core.sweep.ray_executor import run_on_ray

        run_on_ray(todo, sweep.ray.model_copy(update=ray_options or {}), cache_dir, report)
    else:
        from moco_core.sweep.cell_run import run_cell
        from moco_core.sweep.pools import SharedPools

        pools = SharedPools()  # cells come pool by pool: one pool stays loaded across its methods
        try:
            for cell in todo:
                run_cell(cell.config.model_dump(mode="json"), cache_dir, pools)
                report(cell, cell_status(cell))
        finally:
            pools.close()
    return SweepOutcome(directory, [(c, cell_status(c)) for c in cells], [c.name for c in todo])
