"""Compute-matched controls: is a method's gain more than what the same compute buys one model?

A method's budget is its generations per test item (all its generations, dev work included,
over the test items). The control is the pool's self-consistency or best-of-N run on the same
dataset whose budget is closest to the method's, at or above it when one exists; a method that
beats its control gains from collaboration, not only from sampling more.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import mean

from moco_core.report.collect import SINGLE, CellResult

CONTROL_METHODS = ("self_consistency", "best_of_n")


@dataclass
class ControlRow:
    pool: str
    dataset: str
    method: str
    score: float
    budget: float
    control: str | None = None
    control_score: float | None = None
    control_budget: float | None = None

    @property
    def gain(self) -> float | None:
        return None if self.control_score is None else self.score - self.control_score


def _budget(cell: CellResult) -> float:
    return cell.generations / cell.test_items if cell.test_items else 0.0


def compute_matched(cells: list[CellResult]) -> list[ControlRow]:
    """One row per pool, dataset and method (seeds averaged), with its matched control where the sweep has one."""
    grouped: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    for cell in cells:
        if cell.method_key != SINGLE:
            grouped[cell.pool, cell.dataset, cell.method].append(cell)
    rows = {key: (mean(c.score for c in found), mean(_budget(c) for c in found)) for key, found in grouped.items()}
    control_keys = {(c.pool, c.dataset, c.method) for c in cells if c.method_key in CONTROL_METHODS}
    result = []
    for (pool, dataset, method), (score, budget) in sorted(rows.items()):
        if (pool, dataset, method) in control_keys:
            continue
        row = ControlRow(pool, dataset, method, score, budget)
        candidates = [(rows[k][1], k[2]) for k in control_keys if k[:2] == (pool, dataset)]
        if candidates:
            above = [c for c in candidates if c[0] >= budget]
            control_budget, control = min(above or candidates, key=lambda c: abs(c[0] - budget))
            row.control, row.control_budget = control, control_budget
            row.control_score = rows[pool, dataset, control][0]
        result.append(row)
    return result
