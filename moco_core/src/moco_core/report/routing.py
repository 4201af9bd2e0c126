"""Routing metrics of runs on a response bank, as RouterBench reports them.

Per pool and bank: each model alone, the oracle router (per query the best score, at the
cheapest model that reaches it) and every method as (quality, cost per query) points. The
single models' quality-cost frontier (upper convex hull, flat past its last point) is what a
router must beat: its area over the cost range, divided by that range, is its average quality
(RouterBench's AIQ), and each method's height above it at its own cost says whether routing paid.
A method's cost per query is its routed model's cost where it names one (``routed_to``), else
the cost of every pool model (it asked them all).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from statistics import mean

import yaml

from moco_core.banks.bank import BANK_TASK_TYPE, read_bank_items
from moco_core.report.collect import SINGLE, CellResult


@dataclass
class RoutingPoint:
    pool: str
    dataset: str
    name: str
    kind: str  # model | oracle | method
    quality: float
    cost: float
    oracle_gap: float = 0.0
    above_frontier: float | None = None


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper convex hull of (cost, quality) points that never goes down as cost grows."""
    hull: list[tuple[float, float]] = []
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if hull and point[1] <= hull[-1][1]:
            continue
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (y2 - y1) * (point[0] - x1) <= (point[1] - y1) * (x2 - x1):
                hull.pop()
            else:
                break
        hull.append(point)
    return hull


def frontier_at(hull: list[tuple[float, float]], cost: float) -> float:
    """The frontier's quality at ``cost``: nothing below its cheapest point, flat past its last."""
    if cost < hull[0][0]:
        return 0.0
    for (x1, y1), (x2, y2) in pairwise(hull):
        if x1 <= cost <= x2:
            return y1 + (y2 - y1) * (cost - x1) / (x2 - x1) if x2 > x1 else y2
    return hull[-1][1]


def average_quality(hull: list[tuple[float, float]], low: float, high: float) -> float:
    """Area under the frontier over [low, high] divided by its width (RouterBench's AIQ)."""
    if high <= low:
        return frontier_at(hull, high)
    knots = sorted({low, high, *(x for x, _ in hull if low < x < high)})
    area = 0.0
    for left, right in pairwise(knots):
        if left >= hull[0][0]:  # below the cheapest model the frontier is 0 (a knot, so never straddled)
            area += (right - left) * (frontier_at(hull, left) + frontier_at(hull, right)) / 2
    return area / (high - low)


def _bank_of(cell: CellResult) -> dict[str, dict[str, dict]] | None:
    config = yaml.safe_load((cell.directory / "config.yaml").read_text(encoding="utf-8"))
    path = (config.get("dataset") or {}).get("path")
    return read_bank_items(Path(path)) if path else None


def routing_points(cells: list[CellResult]) -> tuple[list[RoutingPoint], dict[tuple[str, str], float]]:
    """Every point per (pool, bank), and the single-model frontier's average quality per (pool, bank)."""
    groups: dict[tuple[str, str], list[CellResult]] = defaultdict(list)
    for cell in cells:
        if cell.metrics.get("task_type") == BANK_TASK_TYPE:
            groups[cell.pool, cell.dataset].append(cell)
    points, aiq = [], {}
    for (pool, dataset), group in sorted(groups.items()):
        bank = _bank_of(group[0])
        if not bank:
            continue
        names = {m["name"]: m["path"] for m in group[0].metrics.get("pool", [])}
        queries = [line["input"] for line in group[0].lines() if line["input"] in bank]
        entries = [{n: bank[q][p] for n, p in names.items()} for q in queries]
        found = [
            RoutingPoint(
                pool, dataset, n, "model", mean(e[n]["score"] for e in entries), mean(e[n]["cost"] for e in entries)
            )
            for n in names
        ]
        best = [max(v["score"] for v in e.values()) for e in entries]
        cheapest = [min(v["cost"] for v in e.values() if v["score"] == b) for e, b in zip(entries, best, strict=True)]
        oracle = RoutingPoint(pool, dataset, "oracle router", "oracle", mean(best), mean(cheapest))
        for cell in group:
            if cell.method_key == SINGLE:
                continue
            costs = []
            for line in cell.lines():
                per_model = {n: bank[line["input"]][p]["cost"] for n, p in names.items()}
                routed = line.get("routed_to")
                costs.append(per_model[routed] if routed in per_model else sum(per_model.values()))
            found.append(RoutingPoint(pool, dataset, cell.method, "method", cell.score, mean(costs)))
        hull = frontier([(p.cost, p.quality) for p in found if p.kind == "model"])
        costs_seen = [p.cost for p in [*found, oracle]]
        low, high = min(costs_seen), max(costs_seen)
        aiq[pool, dataset] = average_quality(hull, low, high)
        for point in [*found, oracle]:
            point.oracle_gap = oracle.quality - point.quality
            if point.kind != "model":
                point.above_frontier = point.quality - frontier_at(hull, point.cost)
        points += [*found, oracle]
    return points, aiq
