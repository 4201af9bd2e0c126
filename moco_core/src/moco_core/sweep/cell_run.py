"""Running one cell in the current process, recording success or failure in its directory.

Shared by both executors: the local one calls ``run_cell`` directly, a Ray task calls
``run_cell_staged``, which runs the cell in a worker-local folder seeded with the cell's files
and sends the folder back, so results and logs return to the sweep directory even when the
worker does not see it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moco_core.config import parse_config
from moco_core.sweep.cells import ERROR, LOG
from moco_core.sweep.transfer import read_cell_files, write_cell_files


@contextlib.contextmanager
def _cache_dir(path: str | None) -> Iterator[None]:
    """Point the generation cache at the sweep's shared folder for the cell's duration."""
    previous = os.environ.get("MOCO_CACHE_DIR")
    if path is not None:
        os.environ["MOCO_CACHE_DIR"] = path
    try:
        yield
    finally:
        if path is not None and previous is None:
            os.environ.pop("MOCO_CACHE_DIR", None)
        elif path is not None and previous is not None:
            os.environ["MOCO_CACHE_DIR"] = previous


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[logging.Handler]:
    """The cell's ``run.log``: moco's own INFO lines and every warning logged while the cell runs.

    Only the ``moco_core`` logger is lowered to INFO, so the console's level (``--quiet``,
    ``--verbose``) and third-party verbosity stay as the command line set them.
    """
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root, core = logging.getLogger(), logging.getLogger("moco_core")
    level = core.level
    root.addHandler(handler)
    core.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        core.setLevel(level)
        handler.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def record_failure(directory: Path, error: str, detail: str = "") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"error": error, "traceback": detail, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (directory / ERROR).write_text(json.dumps(payload, indent=2), encoding="utf-8")


def run_cell(config_data: dict[str, Any], cache_dir: str | None = None, pools: Any = None) -> dict[str, Any]:
    """Run (or resume) one cell; never raises for a failing cell, it returns and records the error.

    ``pools`` (the local executor's :class:`~moco_core.sweep.pools.SharedPools`) keeps the pool
    loaded between consecutive cells of one pool config.
    """
    from moco_core.runner import run

    config = parse_config(config_data, "sweep cell")
    directory = config.resolved_output_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with _cache_dir(cache_dir), _log_to(directory / LOG) as handler:
        logging.getLogger(__name__).info("cell started: %s on %s", config.method, config.dataset.label)
        try:
            result = run(config, pools=pools)
        except Exception as exc:
            detail = traceback.format_exc()
            handler.stream.write(detail)
            record_failure(directory, _first_line(exc), detail)
            return {"state": "failed", "error": _first_line(exc)}
    (directory / ERROR).unlink(missing_ok=True)
    return {"state": "done", "score": result.metrics["score"]["mean"]}


def run_cell_staged(config_data: dict[str, Any], files: dict[str, bytes], cache_dir: str | None) -> dict[str, Any]:
    """A Ray task's body: the cell runs in a private folder holding its earlier files; all of them come back."""
    with tempfile.TemporaryDirectory(prefix="moco-cell-") as folder:
        write_cell_files(Path(folder), files)
        result = run_cell({**config_data, "output_dir": folder}, cache_dir)
        result["files"] = read_cell_files(Path(folder))
    return result
