"""The results table of one pool: methods x datasets grouped by domain, against the best single model.

Like the paper's Table 1: dataset columns in domain order, a macro-average per domain with more
than one dataset and an overall average (reward-model columns min-max normalised across rows
before they enter an average). Seeds are averaged. The reference row is the pool's best single
model; a method cell above it is marked as an improvement, and the best and second-best method
of each column are marked.  An upper bound chosen with the test labels (``oracle_routing``) gets
a labelled last row and takes part in no marking.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import mean

from moco_core.compare import BEST_SINGLE, DOMAIN_ORDER, ORACLE
from moco_core.report.collect import SINGLE, CellResult


@dataclass
class Column:
    label: str
    domain: str
    kind: str  # dataset | domain_avg | avg


@dataclass
class ResultsTable:
    """Rows of numbers (None = missing); ``marks[row][col]`` is "best", "second" or ""; ``up`` marks gains."""

    pool: str
    columns: list[Column]
    rows: list[tuple[str, list[float | None]]]
    reference: bool
    marks: list[list[str]] = field(default_factory=list)
    up: list[list[bool]] = field(default_factory=list)
    bounds: set[str] = field(default_factory=set)
    """Labels of rows that are upper bounds, not methods."""


def _domain_rank(domain: str) -> tuple[int, str]:
    return (DOMAIN_ORDER.index(domain) if domain in DOMAIN_ORDER else len(DOMAIN_ORDER), domain)


def best_single_by_dataset(cells: list[CellResult]) -> dict[str, float]:
    """Per dataset: the single_model run's score, else the test score of the dev-best model any method measured."""
    singles: dict[str, list[float]] = defaultdict(list)
    measured: dict[str, list[float]] = defaultdict(list)
    for cell in cells:
        if cell.method_key == SINGLE:
            singles[cell.dataset].append(cell.score)
        best = (cell.metrics.get("dev_best_single") or {}).get("test_score")
        if best is not None:
            measured[cell.dataset].append(float(best))
    found = {d: mean(v) for d, v in measured.items()}
    found.update({d: mean(v) for d, v in singles.items()})
    return found


def results_table(cells: list[CellResult], pool: str) -> ResultsTable:
    in_pool = [c for c in cells if c.pool == pool and not c.is_control]
    datasets = sorted({(c.domain, c.dataset, c.normalize) for c in in_pool}, key=lambda d: (_domain_rank(d[0]), d[1]))
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    bounds: set[str] = set()
    for cell in in_pool:
        if cell.is_bound:
            bounds.add(label := f"{ORACLE} ({cell.method})")
            scores[label][cell.dataset].append(cell.score)
        elif cell.method_key != SINGLE:
            scores[cell.method][cell.dataset].append(cell.score)
    ordered = sorted(scores, key=lambda label: label in bounds)
    values = {m: {d: mean(v) for d, v in scores[m].items()} for m in ordered}
    reference = best_single_by_dataset(in_pool)
    table = {BEST_SINGLE: reference, **values} if reference else values
    normalised = _normalised(table, {d for _, d, n in datasets if n})
    domains = list(dict.fromkeys(domain for domain, _, _ in datasets))
    columns: list[Column] = []
    for domain in domains:
        names = [d for dom, d, _ in datasets if dom == domain]
        columns += [Column(name, domain, "dataset") for name in names]
        if len(names) > 1:
            columns.append(Column(f"{domain} avg", domain, "domain_avg"))
    if len(datasets) > 1:
        columns.append(Column("avg", "", "avg"))
    rows = []
    for method, by_dataset in table.items():
        row: list[float | None] = []
        domain_means = []
        for column in columns:
            if column.kind == "dataset":
                row.append(by_dataset.get(column.label))
                continue
            if column.kind == "domain_avg":
                names = [d for dom, d, _ in datasets if dom == column.domain]
                complete = all(d in by_dataset for d in names)
                row.append(mean(normalised[method][d] for d in names) if complete else None)
                continue
            for domain in domains:
                names = [d for dom, d, _ in datasets if dom == domain]
                if all(d in by_dataset for d in names):
                    domain_means.append(mean(normalised[method][d] for d in names))
            row.append(mean(domain_means) if len(domain_means) == len(domains) else None)
        rows.append((method, row))
    result = ResultsTable(pool, columns, rows, bool(reference), bounds=bounds)
    _mark(result)
    return result


def _normalised(table: dict[str, dict[str, float]], normalize: set[str]) -> dict[str, dict[str, float]]:
    result = {method: dict(values) for method, values in table.items()}
    for dataset in normalize:
        found = [r[dataset] for r in table.values() if dataset in r]
        low, high = min(found), max(found)
        for method, values in table.items():
            if dataset in values:
                result[method][dataset] = (values[dataset] - low) / (high - low) if high > low else 1.0
    return result


def _mark(table: ResultsTable) -> None:
    first = 1 if table.reference else 0
    table.marks = [["" for _ in table.columns] for _ in table.rows]
    table.up = [[False for _ in table.columns] for _ in table.rows]
    for col in range(len(table.columns)):
        methods = [row for label, row in table.rows[first:] if label not in table.bounds]
        present = sorted({row[col] for row in methods if row[col] is not None}, reverse=True)
        for r, (label, row) in enumerate(table.rows):
            value = row[col]
            if value is None or r < first or label in table.bounds:
                continue
            if value == present[0]:
                table.marks[r][col] = "best"
            elif len(present) > 1 and value == present[1]:
                table.marks[r][col] = "second"
            reference = table.rows[0][1][col] if table.reference else None
            table.up[r][col] = reference is not None and value > reference


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_markdown(table: ResultsTable) -> str:
    """Best in bold, second best in italics, ↑ where a method beats the best single model."""
    header = ["method", *(c.label if c.kind != "dataset" else f"{c.domain}: {c.label}" for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]
    for r, (method, row) in enumerate(table.rows):
        cells = []
        for c, value in enumerate(row):
            text = _number(value)
            mark = table.marks[r][c]
            text = f"**{text}**" if mark == "best" else f"_{text}_" if mark == "second" and text else text
            cells.append(text + (" ↑" if table.up[r][c] else ""))
        lines.append("| " + " | ".join([method, *cells]) + " |")
    return "\n".join(lines)


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().rstrip("\n")


def render_table_csv(table: ResultsTable) -> str:
    header = ["pool", "method", *(c.label if c.kind != "dataset" else f"{c.domain}: {c.label}" for c in table.columns)]
    return csv_text(header, [[table.pool, method, *map(_number, row)] for method, row in table.rows])


def latex_escape(text: str) -> str:
    for plain, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#")):
        text = text.replace(plain, escaped)
    return text


def domain_spans(table: ResultsTable) -> list[tuple[str, int]]:
    """The header row above the dataset names: each domain with the number of columns it spans."""
    spans: list[tuple[str, int]] = []
    for column in table.columns:
        domain = column.domain if column.kind != "avg" else ""
        if spans and spans[-1][0] == domain:
            spans[-1] = (domain, spans[-1][1] + 1)
        else:
            spans.append((domain, 1))
    return spans


def render_latex(table: ResultsTable) -> str:
    """A booktabs tabular: a domain header row over the dataset row; bold best, underlined second, ↑ gains."""
    groups = domain_spans(table)
    spec = "l" + "r" * len(table.columns)
    domain_row = " & ".join(["", *(rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(d)}}}" for d, n in groups)])
    names = " & ".join(["method", *(latex_escape(c.label) for c in table.columns)])
    body = []
    for r, (method, row) in enumerate(table.rows):
        cells = []
        for c, value in enumerate(row):
            text = _number(value)
            mark = table.marks[r][c]
            text = rf"\textbf{{{text}}}" if mark == "best" else rf"\underline{{{text}}}" if mark == "second" else text
            cells.append(text + (r"$^\uparrow$" if table.up[r][c] else ""))
        body.append(" & ".join([latex_escape(method), *cells]) + r" \\")
        if r == 0 and table.reference:
            body.append(r"\midrule")
    return "\n".join(
        [
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            domain_row + r" \\",
            names + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
        ]
    )
