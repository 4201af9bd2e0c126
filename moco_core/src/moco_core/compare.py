"""One table across run directories: rows are methods, columns datasets grouped by domain.

Like the paper's Table 1: dataset columns ordered by domain, a macro-average per domain with
more than one dataset, and an overall average.  Columns whose scores are not in [0, 1]
(reward models) are min-max normalised across the table's rows before they enter an average;
the cells themselves show the raw means.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moco_core.errors import MocoError
from moco_core.runfiles import read_json_file

BEST_SINGLE = "best single model"
DOMAIN_ORDER = (
    "qa",
    "math",
    "reasoning",
    "knowledge",
    "culture",
    "science",
    "safety",
    "code",
    "medical",
    "instruction_following",
    "diversity",
)


@dataclass
class Column:
    dataset: str
    domain: str
    normalize: bool


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A run's metrics.json, refused in one line naming it unless it has what the table needs."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise MocoError(f"{run_dir}: no metrics.json (not a finished moco run)")
    metrics = read_json_file(path, "metrics file")
    if not isinstance(metrics, dict):
        raise MocoError(f"{path}: not a moco metrics file (expected a JSON object, found {type(metrics).__name__})")
    for key in ("method", "dataset"):
        if not isinstance(metrics.get(key), str) or not metrics[key]:
            raise MocoError(f"{path}: not a moco metrics file (no {key!r})")
    mean = metrics.get("score", {}).get("mean") if isinstance(metrics.get("score"), dict) else None
    if isinstance(mean, bool) or not isinstance(mean, int | float):
        raise MocoError(f"{path}: not a moco metrics file (no numeric 'score.mean')")
    best = metrics.get("dev_best_single")
    single = best.get("test_score") if isinstance(best, dict) else None
    if (best is not None and not isinstance(best, dict)) or isinstance(single, bool | str | list | dict):
        raise MocoError(f"{path}: not a moco metrics file ('dev_best_single' has no numeric 'test_score')")
    return metrics


def _domain_rank(domain: str) -> tuple[int, str]:
    return (DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER), domain)


def collect(run_dirs: list[str | Path]) -> tuple[list[Column], dict[str, dict[str, float]]]:
    """Columns in domain order and ``rows[method][dataset] = mean``.

    The best-single row takes, per dataset, a ``single_model`` run's score or else the test
    score of the dev-best single model that any method measured.
    """
    columns: dict[str, Column] = {}
    rows: dict[str, dict[str, float]] = {}
    best_single: dict[str, float] = {}
    seen: dict[tuple[str, str], str | Path] = {}
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        method, dataset = metrics["method"], metrics["dataset"]
        if (method, dataset) in seen:
            raise MocoError(f"{run_dir}: a second {method} run on {dataset} (first: {seen[method, dataset]}); give one")
        seen[method, dataset] = run_dir
        columns.setdefault(dataset, Column(dataset, metrics.get("domain") or "other", bool(metrics.get("normalize"))))
        rows.setdefault(method, {})[dataset] = metrics["score"]["mean"]
        single = metrics["score"]["mean"] if method == "single_model" else None
        if single is None:
            single = (metrics.get("dev_best_single") or {}).get("test_score")
        if single is not None and (method == "single_model" or dataset not in best_single):
            best_single[dataset] = single
    ordered = sorted(columns.values(), key=lambda c: _domain_rank(c.domain))
    table = {BEST_SINGLE: best_single} if best_single else {}
    table.update((m, r) for m, r in rows.items() if m != "single_model")
    return ordered, table


def _normalised(columns: list[Column], table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    result = {method: dict(values) for method, values in table.items()}
    for column in columns:
        if not column.normalize:
            continue
        values = [r[column.dataset] for r in table.values() if column.dataset in r]
        low, high = min(values, default=0.0), max(values, default=0.0)
        for method, values_by_dataset in table.items():
            if column.dataset in values_by_dataset:
                raw = values_by_dataset[column.dataset]
                result[method][column.dataset] = (raw - low) / (high - low) if high > low else 1.0
    return result


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def comparison_table(run_dirs: list[str | Path]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: dataset columns by domain, per-domain averages, overall average."""
    columns, table = collect(run_dirs)
    normalised = _normalised(columns, table)
    domains = list(dict.fromkeys(c.domain for c in columns))
    header = ["method"]
    for domain in domains:
        in_domain = [c for c in columns if c.domain == domain]
        header += [f"{domain}: {c.dataset}" for c in in_domain]
        if len(in_domain) > 1:
            header.append(f"{domain} avg")
    if len(columns) > 1:
        header.append("avg")
    body = []
    for method, values in table.items():
        row = [method]
        domain_means = []
        for domain in domains:
            in_domain = [c for c in columns if c.domain == domain]
            row += [_cell(values.get(c.dataset)) for c in in_domain]
            mean = _mean([normalised[method][c.dataset] for c in in_domain if c.dataset in values])
            if mean is not None and all(c.dataset in values for c in in_domain):
                domain_means.append(mean)
            if len(in_domain) > 1:
                row.append(_cell(mean if all(c.dataset in values for c in in_domain) else None))
        if len(columns) > 1:
            complete = len(domain_means) == len(domains)
            row.append(_cell(_mean(domain_means) if complete else None))
        body.append(row)
    return header, body


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
