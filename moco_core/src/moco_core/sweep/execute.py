"""Choosing which cells run and handing them to an executor (in this process, or on Ray)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moco_core.errors import MocoError
from moco_core.runfiles import prepare_output_dir
from moco_core.sweep.cells import CELL_INFO, Cell, CellStatus, cell_status, expand
from moco_core.sweep.config import CONTROL_LABEL, SweepConfig
from moco_core.sweep.controls import check_controls, plan_group

SWEEP_FILE = "sweep.yaml"
Report = Callable[[Cell, CellStatus], None]


@dataclass
class SweepOutcome:
    """Every cell with its state after the sweep, and which of them this invocation ran."""

    directory: Path
    cells: list[tuple[Cell, CellStatus]]
    ran: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    """Control cells not planned yet (their N is decided once their group's method cells finish)."""

    def count(self, state: str) -> int:
        return sum(1 for _, status in self.cells if status.state == state)


def check_datasets(sweep: SweepConfig, source: str | Path) -> None:
    """Each dataset key is registered (one line, exit 2), without loading it: a misspelled key is a config
    error, not cells to record as failed and retry. Files are not checked: one may appear later, or
    exist only where the cells run (Ray workers)."""
    from moco_core.official import install_hint
    from moco_core.plugins import get_registry
    from moco_core.validation import suggest

    known = get_registry().datasets
    for i, dataset in enumerate(sweep.datasets):
        if dataset.name is not None and dataset.name not in known:
            hint = install_hint("dataset", dataset.name) or suggest(dataset.name, list(known))
            raise MocoError(f"{source}: datasets.{i}.name: unknown dataset {dataset.name!r}{hint}")


def refuse_changed(cells: list[Cell]) -> None:
    """A cell whose folder holds a run of another config cannot run there (the runner refuses it), so the
    sweep stops before any cell, in one line, rather than recording every such cell as failed."""
    changed = [c for c in cells if cell_status(c).state == "changed"]
    if changed:
        raise MocoError(
            f"{changed[0].directory}: holds a run of a different config ({len(changed)} cell(s) of this sweep "
            "changed since they ran); set another output_dir, or delete those cell folders to rerun them"
        )


def select(cells: list[Cell], retry_failed: bool) -> list[Cell]:
    """Cells to run now: failed ones with ``retry_failed``, else everything neither done nor failed."""
    chosen = []
    for cell in cells:
        state = cell_status(cell).state
        if (state == "failed") if retry_failed else state in ("pending", "partial"):
            chosen.append(cell)
    return chosen


def _write_manifest(sweep: SweepConfig, directory: Path, cells: list[Cell]) -> None:
    prepare_output_dir(directory)
    (directory / SWEEP_FILE).write_text(yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
    write_cell_info(cells)


def write_cell_info(cells: list[Cell]) -> None:
    for cell in cells:
        cell.directory.mkdir(parents=True, exist_ok=True)
        (cell.directory / CELL_INFO).write_text(json.dumps(cell.info(), indent=2), encoding="utf-8")


def _groups(cells: list[Cell]) -> list[list[Cell]]:
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group, []).append(cell)
    return list(groups.values())


def _after_line(group: list[Cell], max_samples: int) -> str:
    pool, dataset, seed = group[0].group
    return (
        f"after    {pool}--{CONTROL_LABEL}N--{dataset}--s{seed}  compute-matched controls: N (1..{max_samples}) "
        "per method, decided when this group's method cells finish"
    )


def _control_todo(cells: list[Cell], retry_failed: bool) -> list[Cell]:
    refuse_changed(cells)
    runnable = ("pending", "partial", *(("failed",) if retry_failed else ()))
    return [c for c in cells if cell_status(c).state in runnable]


def run_controls(
    sweep: SweepConfig, groups: list[list[Cell]], run: Callable[[list[Cell]], None], retry_failed: bool
) -> list[Cell]:
    """Plan and run the control cells of ``groups``: first the N = 1 probes of groups that must measure
    tau, then every group's controls, each wave in one ``run`` call."""
    plans = [plan_group(sweep, group) for group in groups]
    probes = [cell for plan in plans if plan.probe for cell in plan.cells]
    if probes:
        write_cell_info(probes)
        run(_control_todo(probes, retry_failed))
        plans = [plan_group(sweep, group) if plan.probe else plan for group, plan in zip(groups, plans, strict=True)]
    controls = [cell for plan in plans if not plan.probe for cell in plan.cells]
    write_cell_info(controls)
    run(_control_todo(controls, retry_failed))
    return controls


def run_sweep(
    sweep: SweepConfig,
    source: str | Path,
    dry_run: bool = False,
    retry_failed: bool = False,
    executor: str | None = None,
    on_result: Report | None = None,
    ray_options: dict[str, Any] | None = None,
) -> SweepOutcome:
    """Expand, pick the cells to run, run them (unless ``dry_run``) and return every cell's state.

    With ``controls: compute_matched`` each pool, dataset and seed gets its control cells after its
    method cells (local executor), or once every grid cell has finished (Ray).
    """
    directory = sweep.resolved_output_dir(source)
    check_datasets(sweep, source)
    cells = expand(sweep, directory)
    from moco_core.sweep.preflight import check_cells

    check_cells(cells, remote=(executor or sweep.executor) == "ray")
    if sweep.controls is not None:
        check_controls()
    groups = _groups(cells)
    if dry_run:
        return _dry_run(sweep, directory, cells, groups)
    refuse_changed(cells)
    todo = select(cells, retry_failed)
    _write_manifest(sweep, directory, cells)
    report = on_result or (lambda _cell, _status: None)
    cache_dir = str(Path(sweep.cache_dir).expanduser().resolve()) if sweep.cache_dir else None
    ran = [c.name for c in todo]
    controls: list[Cell] = []

    def controls_of(chosen: list[list[Cell]], run: Callable[[list[Cell]], None]) -> None:
        if sweep.controls is not None:
            controls.extend(run_controls(sweep, chosen, run, retry_failed))

    if (executor or sweep.executor) == "ray":
        from moco_core.sweep.ray_executor import run_on_ray

        options = sweep.ray.model_copy(update=ray_options or {})

        def run_ray(chosen: list[Cell]) -> None:
            ran.extend(c.name for c in chosen)
            run_on_ray(chosen, options, cache_dir, report)

        run_on_ray(todo, options, cache_dir, report)
        controls_of(groups, run_ray)  # one Ray session per wave of controls, not one per group
    else:
        from moco_core.sweep.cell_run import run_cell
        from moco_core.sweep.pools import SharedPools

        pools = SharedPools()  # cells come pool by pool: one pool stays loaded across its methods

        def run_local(chosen: list[Cell]) -> None:
            for cell in chosen:
                run_cell(cell.config.model_dump(mode="json"), cache_dir, pools)
                report(cell, cell_status(cell))
            ran.extend(c.name for c in chosen if c.name not in ran)

        try:
            chosen = {c.name for c in todo}
            for group in groups:
                run_local([c for c in group if c.name in chosen])
                controls_of([group], run_local)
        finally:
            pools.close()
    every = cells + controls
    return SweepOutcome(directory, [(c, cell_status(c)) for c in every], ran)


def _dry_run(sweep: SweepConfig, directory: Path, cells: list[Cell], groups: list[list[Cell]]) -> SweepOutcome:
    """Every grid cell's state; control cells are listed where their N is known, else as one "after" line."""
    outcome = SweepOutcome(directory, [(c, cell_status(c)) for c in cells])
    if sweep.controls is None:
        return outcome
    for group in groups:
        plan = plan_group(sweep, group)
        if plan.waiting or plan.probe:
            outcome.after.append(_after_line(group, sweep.controls.max_samples))
        else:
            outcome.cells += [(c, cell_status(c)) for c in plan.cells]
    return outcome
