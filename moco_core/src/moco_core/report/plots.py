"""Scaling and cost figures (matplotlib, PNG and SVG), drawn only when the sweep has the axes for them.

Each point is one method on one pool, averaged over the pool's datasets and seeds (datasets with
raw reward-model scores are left out of the average).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Any

from moco_core.report.collect import SINGLE, CellResult
from moco_core.report.emergence import pool_diversity
from moco_core.report.tables import best_single_by_dataset

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
REFERENCE = "best single model"


def _average(cells: list[CellResult], value: Any) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cell in cells:
        if not cell.normalize and cell.method_key != SINGLE and not (cell.is_control or cell.is_bound):
            number = value(cell)
            if number is not None:
                found[cell.pool, cell.method].append(float(number))
    return {key: mean(values) for key, values in found.items()}


def _save(figure: Any, out_dir: Path, stem: str) -> list[Path]:
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    figure.tight_layout()
    figure.savefig(paths[0], dpi=150)
    figure.savefig(paths[1])
    import matplotlib.pyplot as plt

    plt.close(figure)
    return paths


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scaling_plots(cells: list[CellResult], out_dir: Path) -> list[Path]:
    """Score against the number of models and against pool diversity, one line per method."""
    scores = _average(cells, lambda c: c.score)
    for pool in {c.pool for c in cells}:  # the results table's reference row: single_model, else the dev-best
        best = best_single_by_dataset([c for c in cells if c.pool == pool and not (c.normalize or c.is_control)])
        if best:
            scores[pool, REFERENCE] = mean(best.values())
    sizes = {c.pool: len(c.models) for c in cells}
    diversity = pool_diversity(cells)
    axes = [("models", "number of models in the pool", sizes), ("diversity", "pool diversity", diversity)]
    axes = [(stem, label, x) for stem, label, x in axes if len(set(x.values())) > 1]
    if not axes:
        return []
    plt = _pyplot()
    paths = []
    for stem, label, x_of_pool in axes:
        figure, axis = plt.subplots(figsize=(5.5, 3.8))
        for method in sorted({m for _, m in scores}):
            points = sorted((x_of_pool[p], s) for (p, m), s in scores.items() if m == method and p in x_of_pool)
            style = {"color": "black", "linestyle": "--", "zorder": 3} if method == REFERENCE else {}
            axis.plot([x for x, _ in points], [y for _, y in points], marker="o", label=method, **style)
        _pool_ticks(axis, x_of_pool, "{:g}" if stem == "models" else "{:.3f}")
        axis.set_xlabel(label)
        axis.set_ylabel("mean score")
        axis.set_title(f"score vs {label}")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        paths += _save(figure, out_dir, f"scaling_{stem}")
    return paths


def _pool_ticks(axis: Any, x_of_pool: dict[str, float], number: str, most: int = 8) -> None:
    """Name the pools under their x positions, so a reader sees which point is which pool."""
    at: dict[float, list[str]] = defaultdict(list)
    for pool, x in x_of_pool.items():
        at[x].append(pool)
    if len(at) > most:  # too many to name legibly: plain number ticks
        return
    xs = sorted(at)
    axis.set_xticks(xs, [f"{number.format(x)}\n{', '.join(sorted(at[x]))}" for x in xs])


COST_VIEWS = (
    ("generated tokens per test item", lambda c: c.per_item(c.tokens)),
    ("forward passes per test item (this run)", lambda c: c.per_item(c.forward_passes)),
    ("generations per test item", lambda c: c.per_item(c.generations)),
    ("wall time per run (s)", lambda c: c.wall_time),
)
"""Each panel's x axis. Tokens and generations count cache-served work too; forward passes and wall
time are what this run computed (a generation read from the cache costs neither)."""


def cost_views(cells: list[CellResult]) -> list[tuple[str, dict[tuple[str, str], float]]]:
    """Each cost panel with a value per (pool, method); a measure no run recorded has no panel."""
    views = [(label, _average(cells, value)) for label, value in COST_VIEWS]
    return [(label, values) for label, values in views if values]


def cost_plot(cells: list[CellResult], out_dir: Path) -> list[Path]:
    """Score against compute, one panel per measure the runs recorded (old runs lack the counters).

    Colour is the method and marker shape the pool, so one legend serves every panel.
    """
    scores = _average(cells, lambda c: c.score)
    views = cost_views(cells)
    if not scores or not views:
        return []
    plt = _pyplot()
    from matplotlib.lines import Line2D

    methods = sorted({m for _, m in scores})
    pools = list(dict.fromkeys(p for p, _ in scores))
    colour = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    marker = {p: MARKERS[i % len(MARKERS)] for i, p in enumerate(pools)}
    columns = 2 if len(views) > 2 else len(views)
    rows = (len(views) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.6 * columns + 2.2, 3.6 * rows), squeeze=False)
    flat = [axis for row in axes for axis in row]
    for axis, (label, values) in zip(flat, views, strict=False):
        for (pool, method), x in sorted(values.items()):
            axis.scatter([x], [scores[pool, method]], s=40, color=colour[method], marker=marker[pool], alpha=0.85)
        low, high = min(values.values()), max(values.values())
        if low > 0 and high > 20 * low:  # a spread over decades: a log axis keeps the cheap methods apart
            axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("mean score")
        axis.grid(alpha=0.3)
    for axis in flat[len(views) :]:
        axis.set_visible(False)
    handles = [Line2D([], [], color=colour[m], marker="o", linestyle="", label=m) for m in methods]
    handles += [
        Line2D([], [], color="black", marker=marker[p], fillstyle="none", linestyle="", label=f"pool {p}")
        for p in pools
    ]
    axes[0][-1].legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle("cost vs score (points: method x pool, averaged over datasets and seeds)")
    return _save(figure, out_dir, "cost")
