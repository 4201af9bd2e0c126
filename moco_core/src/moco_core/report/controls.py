"""Compute-matched controls: is a method's gain more than what the same compute buys one model?

A method's budget is its generated tokens per test item (every generation it used, dev work and
cache-served ones included, over the test items); runs without token counts fall back to
generations per item, and the row says which. The control is the sweep's own compute-matched
self-consistency cell for the method (``controls: compute_matched``), else the pool's
self-consistency or best-of-N run on the same dataset whose budget is closest to the method's, at or
above it when one exists. A method that beats its control gains from collaboration, not only from
generating more.
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
    budget: float | None
    unit: str = "tokens"
    control: str | None = None
    control_score: float | None = None
    control_budget: float | None = None

    @property
    def gain(self) -> float | None:
        return None if self.control_score is None else self.score - self.control_score


def budget(cells: list[CellResult], unit: str) -> float | None:
    """Mean per-test-item budget of ``cells`` in ``unit`` (tokens or generations); None if one lacks it."""
    found = [c.per_item(c.tokens if unit == "tokens" else c.generations) for c in cells]
    return None if any(v is None for v in found) else mean(v for v in found if v is not None)


def _unit(groups: list[list[CellResult]]) -> str:
    return "tokens" if all(c.tokens is not None for group in groups for c in group) else "generations"


def compute_matched(cells: list[CellResult]) -> list[ControlRow]:
    """One row per pool, dataset and method (seeds averaged), with its matched control where the sweep has one."""
    grouped: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    controls: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    for cell in cells:
        if cell.method_key in CONTROL_METHODS:
            controls[cell.pool, cell.dataset, cell.method].append(cell)
        elif cell.method_key != SINGLE:
            grouped[cell.pool, cell.dataset, cell.method].append(cell)
    result = []
    for (pool, dataset, method), found in sorted(grouped.items()):
        here = {k[2]: v for k, v in controls.items() if k[:2] == (pool, dataset)}
        made = [c for group in here.values() for c in group if method in c.control_for]
        unit = _unit([found, *here.values()])
        row = ControlRow(pool, dataset, method, mean(c.score for c in found), budget(found, unit), unit)
        if made:
            row.control = ", ".join(sorted({c.method for c in made}))
            row.control_score = mean(c.score for c in made)
            row.control_budget = budget(made, unit)
        elif here and row.budget is not None:
            candidates = [(b, name) for name, group in here.items() if (b := budget(group, unit)) is not None]
            above = [c for c in candidates if c[0] >= row.budget]
            if candidates:
                target = row.budget
                row.control_budget, row.control = min(above or candidates, key=lambda c: abs(c[0] - target))
                row.control_score = mean(c.score for c in here[row.control])
        result.append(row)
    return result
