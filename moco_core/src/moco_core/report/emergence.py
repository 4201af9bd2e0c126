"""Collaborative emergence, and pool diversity, from per-item scores of every pool model.

An item is *unsolved by the pool* when every pool model alone scores below 1 on it; a method's
emergence is the share of those items it solves (score 1). The per-model item scores come from
any run of the same pool, dataset and seed that measured them (``model_scores`` in its
predictions, written by ``single_model`` and the voting methods). Datasets whose scores are
not in [0, 1] (reward models) have no "solved" and are left out.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from statistics import mean

from moco_core.report.collect import SINGLE, CellResult

Group = tuple[str, str, int]  # pool, dataset, seed


def _key(line: dict) -> tuple[int, str]:
    return (int(line["index"]), str(line["id"]))


def model_item_scores(cells: list[CellResult]) -> dict[Group, dict[tuple[int, str], dict[str, float]]]:
    """Per (pool, dataset, seed): item -> every pool model's score, where some run measured all of them."""
    found: dict[Group, dict[tuple[int, str], dict[str, float]]] = {}
    for cell in sorted(cells, key=lambda c: c.method_key != SINGLE):
        group = (cell.pool, cell.dataset, cell.seed)
        if group in found or cell.normalize:
            continue
        items = {}
        for line in cell.lines():
            scores = line.get("model_scores") or {}
            if cell.models and all(name in scores for name in cell.models):
                items[_key(line)] = {name: float(scores[name]) for name in cell.models}
        if items and len(items) == len(cell.lines()):
            found[group] = items
    return found


@dataclass
class EmergenceRow:
    pool: str
    method: str
    domain: str
    unsolved: int
    solved: int

    @property
    def share(self) -> float | None:
        return self.solved / self.unsolved if self.unsolved else None


def emergence(cells: list[CellResult]) -> list[EmergenceRow]:
    """Per pool, method and domain (plus "all"): items no single model solved, and how many the method solved."""
    per_model = model_item_scores(cells)
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for cell in cells:
        items = per_model.get((cell.pool, cell.dataset, cell.seed))
        if items is None or cell.method_key == SINGLE or cell.is_control or cell.is_bound:
            continue
        unsolved = {key for key, scores in items.items() if max(scores.values()) < 1.0}
        solved = sum(1 for line in cell.lines() if _key(line) in unsolved and float(line["score"]) >= 1.0)
        for domain in (cell.domain, "all"):
            totals[cell.pool, cell.method, domain][0] += len(unsolved)
            totals[cell.pool, cell.method, domain][1] += solved
    return [EmergenceRow(p, m, d, u, s) for (p, m, d), (u, s) in sorted(totals.items())]


def pool_diversity(cells: list[CellResult]) -> dict[str, float]:
    """Per pool: how often two of its models disagree on whether an item is solved (mean over pairs and items)."""
    rates: dict[str, list[float]] = defaultdict(list)
    for (pool, _, _), items in model_item_scores(cells).items():
        names = list(next(iter(items.values())))
        for a, b in combinations(names, 2):
            rates[pool].append(mean(float((s[a] >= 1.0) != (s[b] >= 1.0)) for s in items.values()))
    return {pool: mean(values) for pool, values in rates.items() if values}
