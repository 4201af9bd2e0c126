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
    def tokens(self) -> int | None:
        """Generated tokens where the method counted them (``usage.tokens``), else None."""
        usage = self.metrics.get("usage") or {}
        tokens = usage.get("tokens") if isinstance(usage, dict) else None
        return sum(int(v) for v in tokens.values()) if isinstance(tokens, dict) and tokens else None

    def lines(self) -> list[dict[str, Any]]:
        if self._lines is None:
            self._lines = read_predictions(self.directory / PREDICTIONS)
        return self._lines


def _cell(directory: Path) -> CellResult:
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
    )


def collect_cells(root: str | Path) -> list[CellResult]:
    """Every finished run under ``root`` (unfinished or failed cells are left out)."""
    root = Path(root)
    if not root.is_dir():
        raise MocoError(f"{root}: not a directory")
    found = sorted(path.parent for path in root.rglob(METRICS) if "work" not in path.relative_to(root).parts[:-1])
    cells = [_cell(directory) for directory in found]
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
