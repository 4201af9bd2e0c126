"""The cost table: what each method spent per test item next to its score, from the run's counters.

Tokens and generations count every generation a method used, cache-served ones included, so they
are what a fresh run would generate; forward passes and wall time are what the run itself computed
(a cache hit costs neither). Runs from before the ``compute`` counters show blanks where they lack one.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from moco_core.compare import ORACLE
from moco_core.report.collect import CellResult

COST_HEADER = ["pool", "dataset", "method", "score", "tokens/item", "forward passes/item", "gens/item", "wall time (s)"]
COST_NOTE = (
    "tokens/item and gens/item include generations read from the cache (what a fresh run generates); "
    "forward passes and wall time are this run's own work (cache hits cost none)."
)


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else mean(v for v in values if v is not None)


def _text(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def cost_rows(cells: list[CellResult]) -> list[list[str]]:
    """One row per pool, dataset and method (seeds averaged), the single models included; an upper
    bound chosen with the test labels is labelled as one, like the results table's row."""
    grouped: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    for cell in cells:
        method = f"{ORACLE} ({cell.method})" if cell.is_bound else cell.method
        grouped[cell.pool, cell.dataset, method].append(cell)
    rows = []
    for (pool, dataset, method), found in sorted(grouped.items()):
        rows.append(
            [
                pool,
                dataset,
                method,
                _text(mean(c.score for c in found), 4),
                _text(_mean([c.per_item(c.tokens) for c in found]), 1),
                _text(_mean([c.per_item(c.forward_passes) for c in found]), 2),
                _text(_mean([c.per_item(c.generations) for c in found]), 2),
                _text(_mean([c.wall_time for c in found]), 1),
            ]
        )
    return rows
