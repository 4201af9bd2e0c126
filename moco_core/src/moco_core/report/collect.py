"""Finding the finished runs under a directory and what the analyses need from each.

Sweep cells carry ``cell.json`` (method label, pool, seed); a plain run directory without one
still counts, labelled by its metrics, so ``moco report`` also works on a folder of ``moco run``
outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moco_core.compare import read_metrics
from moco_core.errors import MocoError
from moco_core.runner import METRICS, PREDICTIONS, read_predictions

CELL_INFO = "cell.json"
CONTROL_FOR = "control_for"
SINGLE = "single_model"


@dataclass
class CellResult:
    """One finished run with its axis labels; predictions are read only when an analysis asks."""

    directory: Path
    method: str
    method_key: str
    dataset: str
    domain: str
    pool: str
    seed: int
    models: list[str]
    metrics: dict[str, Any]
    control_for: list[str] = field(default_factory=list)
    """Methods this cell is the sweep's compute-matched control of (``controls: compute_matched``)."""
    _lines: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def score(self) -> float:
        return float(self.metrics["score"]["mean"])

    @property
    def normalize(self) -> bool:
        return bool(self.metrics.get("normalize"))

    @property
    def test_items(self) -> int:
        score = self.metrics["score"]
        return int(score.get("item_count", score.get("count", 0)))

    @property
    def generations(self) -> int:
        made = self.metrics.get("generations") or {}
        return int(made.get("made", 0)) + int(made.get("cached", 0))

    @property
    def compute(self) -> dict[str, Any]:
        found = self.metrics.get("compute")
        return found if isinstance(found, dict) else {}

    @property
    def tokens(self) -> int | None:
        """Generated tokens the method used, new and cache-served alike (what a fresh run would generate).

        From the ``compute`` counters when every generation's count is known; else the method's own
        ``usage.generated_tokens`` (API methods, and runs from before the counters); else None.
        """
        compute = self.compute
        if compute.get("complete"):
            return int(compute.get("total_tokens", 0)) + int(compute.get("total_cached_tokens", 0))
        usage = self.metrics.get("usage") or {}
        tokens = usage.get("generated_tokens", usage.get("tokens")) if isinstance(usage, dict) else None
        return sum(int(v) for v in tokens.values()) if isinstance(tokens, dict) and tokens else None

    @property
    def forward_passes(self) -> int | None:
        """Model forward calls of this run (cache hits cost none); None for runs without the counters."""
        passes = self.compute.get("forward_passes")
        return sum(int(v) for v in passes.values()) if isinstance(passes, dict) else None

    @property
    def wall_time(self) -> float | None:
        value = self.metrics.get("wall_time_s")
        return float(value) if isinstance(value, (int, float)) else None

    def per_item(self, value: float | None) -> float | None:
        return None if value is None or not self.test_items else value / self.test_items

    def lines(self) -> list[dict[str, Any]]:
        if self._lines is None:
            self._lines = read_predictions(self.directory / PREDICTIONS)
        return self._lines


def read_cell(directory: Path) -> CellResult:
    """One finished run directory with the labels its ``cell.json`` gives (or its metrics)."""
    metrics = read_metrics(directory)
    info_file = directory / CELL_INFO
    info = json.loads(info_file.read_text(encoding="utf-8")) if info_file.is_file() else {}
    models = info.get("models") or [m.get("name", "") for m in metrics.get("pool", [])]
    return CellResult(
        directory=directory,
        method=info.get("method", metrics["method"]),
        method_key=info.get("method_key", metrics["method"]),
        dataset=info.get("dataset", metrics["dataset"]),
        domain=metrics.get("domain") or "other",
        pool=info.get("pool", "pool"),
        seed=int(info.get("seed", metrics.get("seed", 0))),
        models=models,
        metrics=metrics,
        control_for=list(info.get(CONTROL_FOR) or []),
    )


def collect_cells(root: str | Path) -> list[CellResult]:
    """Every finished run under ``root`` (unfinished or failed cells are left out)."""
    root = Path(root)
    if not root.is_dir():
        raise MocoError(f"{root}: not a directory")
    found = sorted(path.parent for path in root.rglob(METRICS) if "work" not in path.relative_to(root).parts[:-1])
    cells = [read_cell(directory) for directory in found]
    if not cells:
        raise MocoError(f"{root}: no finished runs (no metrics.json below it)")
    seen: dict[tuple[str, str, str, int], Path] = {}
    for cell in cells:
        key = (cell.pool, cell.method, cell.dataset, cell.seed)
        if key in seen:
            raise MocoError(
                f"{cell.directory}: a second {cell.method} run on {cell.dataset} (pool {cell.pool}, seed {cell.seed}; "
                f"first: {seen[key]}); report one sweep at a time"
            )
        seen[key] = cell.directory
    return cells
