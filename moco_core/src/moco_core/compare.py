"""One table across run directories: rows are methods, columns datasets, cells mean scores."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError

BEST_SINGLE = "best single model"


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise MocoError(f"{run_dir}: no metrics.json (not a finished moco run)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MocoError(f"{path}: malformed JSON: {exc}") from None


def comparison_table(run_dirs: list[str | Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows; the best-single row takes each dataset's dev-best single model score.

    That score comes from a ``single_model`` run or from any method that measured the dev-best
    model on test.
    """
    cells: dict[str, dict[str, float]] = {}
    best_single: dict[str, float] = {}
    datasets: list[str] = []
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        method, dataset = metrics["method"], metrics["dataset"]
        if dataset not in datasets:
            datasets.append(dataset)
        cells.setdefault(method, {})[dataset] = metrics["score"]["mean"]
        single = (metrics.get("dev_best_single") or {}).get("test_score")
        if method == "single_model":
            single = metrics["score"]["mean"]
        if single is not None and dataset not in best_single:
            best_single[dataset] = single
    rows = []
    if best_single:
        rows.append([BEST_SINGLE, *(_cell(best_single.get(d)) for d in datasets)])
    for method, by_dataset in cells.items():
        if method == "single_model":
            continue
        rows.append([method, *(_cell(by_dataset.get(d)) for d in datasets)])
    return ["method", *datasets], rows


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_csv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")
