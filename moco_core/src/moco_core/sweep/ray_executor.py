"""The Ray executor: each cell is one task asking for the CPUs and GPUs its pool needs.

A task runs its cell in a worker-local folder and returns the folder's files (predictions,
metrics, log, error), which the driver writes into the sweep directory; the workers need not
see that directory. The generation cache is a path every worker must see (``cache_dir``).
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Callable
from typing import Any

from moco_core.config import dump_config
from moco_core.errors import MocoError
from moco_core.runner import CONFIG
from moco_core.sweep.cell_run import record_failure, run_cell_staged
from moco_core.sweep.cells import CELL_INFO, ERROR, Cell, CellStatus, cell_status
from moco_core.sweep.config import RayConfig
from moco_core.sweep.transfer import read_cell_files, write_cell_files


def gpus_for(cell: Cell, options: RayConfig, cluster_gpus: float) -> float:
    """One GPU per distinct local model of the pool (capped by residency and the cluster); none on CPU."""
    if options.gpus_per_cell is not None:
        return options.gpus_per_cell
    if cluster_gpus == 0 or cell.config.hardware.device in ("cpu", "mps"):
        return 0
    from moco_core.plugins import get_registry

    backends = get_registry().backends
    models = cell.config.models
    need = len({(m.backend, m.path) for m in models if m.backend not in backends or backends[m.backend].local_paths})
    cap = cell.config.hardware.max_resident_models
    if cap is not None:
        need = min(need, cap)
    return float(min(need, cluster_gpus))


def check_fits(options: RayConfig, cpus: float | None, gpus: float | None) -> None:
    """Refuse a cell size a fixed-size Ray cannot schedule: its tasks would wait forever, not fail."""
    if cpus is not None and options.cpus_per_cell > cpus:
        raise MocoError(
            f"ray.cpus_per_cell: {options.cpus_per_cell:g} CPUs per cell, but the local Ray has {cpus:g}; "
            "lower cpus_per_cell or raise ray.num_cpus"
        )
    if gpus is not None and options.gpus_per_cell is not None and options.gpus_per_cell > gpus:
        raise MocoError(
            f"ray.gpus_per_cell: {options.gpus_per_cell:g} GPUs per cell, but the local Ray has {gpus:g}; "
            "lower gpus_per_cell or raise ray.num_gpus"
        )


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nothing listens on: ``ray.init`` would retry for
    minutes before failing. Other forms (``auto``) are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise MocoError(f"ray.address: cannot reach a Ray cluster at {address} ({exc.strerror or exc})") from None


def _start_ray(options: RayConfig) -> tuple[Any, bool]:
    try:
        import ray
    except ImportError:
        raise MocoError("executor: ray is not installed (pip install 'moco-core[ray]')") from None
    if options.address is None:
        check_fits(options, options.num_cpus, options.num_gpus)
    if ray.is_initialized():
        return ray, False
    if options.address is not None:
        check_reachable(options.address)
        try:
            ray.init(address=options.address, log_to_driver=False)
        except (ConnectionError, RuntimeError) as exc:  # e.g. no GCS there, or a token-authenticated cluster
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MocoError(f"ray.address: could not join the Ray cluster at {options.address}: {first}") from None
    else:
        ray.init(num_cpus=options.num_cpus, num_gpus=options.num_gpus, include_dashboard=False, log_to_driver=False)
    return ray, True


def _bring_back(cell: Cell, result: dict[str, Any]) -> None:
    files = result.pop("files", {})
    files.pop(CELL_INFO, None)
    write_cell_files(cell.directory, files)
    (cell.directory / CONFIG).write_text(dump_config(cell.config), encoding="utf-8")
    if result.get("state") == "done":
        (cell.directory / ERROR).unlink(missing_ok=True)


def waves(cells: list[Cell]) -> tuple[list[Cell], dict[str, list[Cell]]]:
    """The first cell of each pool, dataset and seed, and the cells that wait for it.

    Cells of one group ask the pool's models the same questions (every method starts from the
    members' answers), so the rest of a group starts once its first cell has filled the shared
    cache; different groups still run side by side.
    """
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.pool, cell.dataset, cell.seed), []).append(cell)
    return [g[0] for g in groups.values()], {g[0].name: g[1:] for g in groups.values()}


def run_on_ray(
    cells: list[Cell], options: RayConfig, cache_dir: str | None, report: Callable[[Cell, CellStatus], None]
) -> None:
    """Submit cells as Ray tasks (in waves, see ``waves``); each result is saved as it lands."""
    if not cells:
        return
    ray, started = _start_ray(options)
    try:
        task = ray.remote(run_cell_staged)
        cluster_gpus = ray.cluster_resources().get("GPU", 0)
        if started and options.address is None:  # a cluster's autoscaler may add nodes; a local Ray is fixed
            check_fits(options, ray.cluster_resources().get("CPU", 0), cluster_gpus)
        pending: dict[Any, Cell] = {}

        def submit(cell: Cell) -> None:
            resources = {"num_cpus": options.cpus_per_cell, "num_gpus": gpus_for(cell, options, cluster_gpus)}
            config = cell.config.model_dump(mode="json")
            ref = task.options(**resources, max_retries=0).remote(config, read_cell_files(cell.directory), cache_dir)
            pending[ref] = cell

        first, followers = waves(cells)
        for cell in first:
            submit(cell)
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(finished[0])
            try:
                _bring_back(cell, ray.get(finished[0]))
            except Exception as exc:  # the worker died or the task could not run: the cell failed, the sweep goes on
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                message = f"ray task failed: {type(exc).__name__}: {first_line}"
                record_failure(cell.directory, message, traceback.format_exc())
            report(cell, cell_status(cell))
            for follower in followers.pop(cell.name, []):
                submit(follower)
    finally:
        if started:
            ray.shutdown()
