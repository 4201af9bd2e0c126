"""Finding the finished runs under a directory and what the analyses need from each.

Sweep cells carry ``cell.json`` (method label, pool, seed); a plain run directory without one
still counts, labelled by its metrics, so ``moco report`` also works on a folder of ``moco run``
outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moco_core.compare import read_metrics
from moco_core.compute import COMPUTE_COUNTERS
from moco_core.errors import MocoError
from moco_core.runfiles import read_json_file
from moco_core.runner import METRICS, PREDICTIONS, read_predictions

CELL_INFO = "cell.json"
CONTROL_FOR = "control_for"
SINGLE = "single_model"
CONTROL_LABEL = "control-sc-"
"""Label prefix of a sweep's compute-matched control cells (``controls: compute_matched``)."""


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
    def is_control(self) -> bool:
        """A compute-matched control cell of the sweep: a yardstick for the methods, not one of them, so
        it has no row in the results and emergence tables nor a point in the figures."""
        return self.method_key == "self_consistency" and self.method.startswith(CONTROL_LABEL)

    @property
    def is_bound(self) -> bool:
        """A method that chose with the test labels (``oracle_routing``): an upper bound with a row of
        its own in the results table, never marked best nor counted among the methods."""
        return self.metrics.get("oracle") is True

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
        """Model forward calls of this run (cache hits cost none); None for runs without the counters, and
        where a model generated new text without a counted forward (a remote or scripted backend: unknown,
        not free)."""
        passes = self.compute.get("forward_passes")
        if not isinstance(passes, dict):
            return None
        made = self.compute.get("generations")
        if isinstance(made, dict) and any(int(n) > 0 and not passes.get(m) for m, n in made.items()):
            return None
        return sum(int(v) for v in passes.values())

    @property
    def wall_time(self) -> float | None:
        value = self.metrics.get("wall_time_s")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def per_item(self, value: float | None) -> float | None:
        return None if value is None or not self.test_items else value / self.test_items

    def lines(self) -> list[dict[str, Any]]:
        if self._lines is None:
            self._lines = read_predictions(self.directory / PREDICTIONS)
        return self._lines


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _counts(value: Any) -> bool:
    """A ``{name: whole number}`` block (the counters of ``generations``, ``compute`` and ``usage``)."""
    return isinstance(value, dict) and all(_whole(v) for v in value.values())


def _shape_problem(metrics: dict[str, Any]) -> str | None:
    """What of ``metrics`` the analyses read is not as moco writes it (hand-edited or another tool's file)."""
    score = metrics["score"]
    if not _whole(score.get("item_count", score.get("count", 0))):
        return "'score.count' is not a whole number"
    if metrics.get("generations") is not None and not _counts(metrics["generations"]):
        return "'generations' is not made/cached counts"
    compute = metrics.get("compute")
    if compute is not None:
        if not isinstance(compute, dict):
            return "'compute' is not an object"
        for key in (*COMPUTE_COUNTERS, "total_tokens", "total_cached_tokens"):
            value = compute.get(key)
            if value is not None and not (_whole(value) if key.startswith("total_") else _counts(value)):
                return f"'compute.{key}' is not a count"
    usage = metrics.get("usage")
    tokens = usage.get("generated_tokens", usage.get("tokens")) if isinstance(usage, dict) else None
    if isinstance(tokens, dict) and not _counts(tokens):
        return "'usage' token counts are not whole numbers"
    if not _whole(metrics.get("seed", 0)):
        return "'seed' is not a whole number"
    pool = metrics.get("pool", [])
    if not (isinstance(pool, list) and all(isinstance(m, dict) for m in pool)):
        return "'pool' is not a list of models"
    return None


def read_run_metrics(directory: Path) -> dict[str, Any]:
    """A run's ``metrics.json`` with everything the analyses read checked, else one line naming the file."""
    metrics = read_metrics(directory)
    problem = _shape_problem(metrics)
    if problem:
        raise MocoError(f"{directory / METRICS}: not a moco metrics file ({problem})")
    return metrics


def _read_info(path: Path) -> dict[str, Any]:
    """A sweep cell's ``cell.json`` (empty for a plain run), refused in one line if damaged."""
    if not path.is_file():
        return {}
    info = read_json_file(path, "cell file")
    labels_ok = isinstance(info, dict) and all(
        isinstance(info.get(key, ""), str) for key in ("method", "method_key", "dataset", "pool")
    )
    lists_ok = labels_ok and all(
        isinstance(info.get(key, []), list) and all(isinstance(v, str) for v in info.get(key, []))
        for key in ("models", CONTROL_FOR)
    )
    if not (lists_ok and _whole(info.get("seed", 0))):
        raise MocoError(f"{path}: damaged cell file (not the axes a sweep writes); rerun the sweep to rewrite it")
    return info


def read_cell(directory: Path) -> CellResult:
    """One finished run directory with the labels its ``cell.json`` gives (or its metrics)."""
    metrics = read_run_metrics(directory)
    info = _read_info(directory / CELL_INFO)
    models = info.get("models") or [str(m.get("name", "")) for m in metrics.get("pool", [])]
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
