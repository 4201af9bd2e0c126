"""``moco compare`` output formats: markdown and LaTeX tables for papers, CSV and JSON for analysis.

Markdown and LaTeX show one wide table (cells: mean, 95% interval or spread over seeds, n)
and a second one of each method's difference from the best single model with its p-value.
CSV and JSON give one record per cell with every number, for pandas or a plotting script.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from moco_core.compare import Cell, Comparison, wide_layout

LEGEND = (
    "Cells: mean [bootstrap 95% interval over items] n=items; over several seeds: mean ± standard deviation "
    "across seeds (k seeds). vs best single: the method's mean minus the pool's best single model's on the "
    "same items, with a two-sided p-value (exact McNemar for 0/1 scores, else paired bootstrap)."
)
FORMATS = ("markdown", "csv", "json", "latex")


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def cell_text(cell: Cell) -> str:
    """``0.6000 [0.4600, 0.7400] n=50`` for one run; ``0.6000 ± 0.0200 (3 seeds) n=50`` over seeds."""
    text = _number(cell.mean)
    if cell.seed_sd is not None:
        text += f" ± {cell.seed_sd:.4f} ({cell.seeds} seeds)"
    elif cell.ci is not None:
        text += f" [{cell.ci[0]:.4f}, {cell.ci[1]:.4f}]"
    return f"{text} n={cell.n}"


def vs_best_text(cell: Cell) -> str:
    test = cell.vs_best
    if test is None:
        return ""
    return f"{test.improvement:+.4f} (p={test.p_value:.3g}, {test.test}, n={test.n})"


def _grids(comparison: Comparison) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    layout = wide_layout(comparison)
    header = ["method", *(title for title, _ in layout)]
    rows = []
    for label, cells in comparison.rows.items():
        row = [label]
        for _, key in layout:
            row.append(cell_text(cells[key]) if key in cells else _number(comparison.averages[label].get(key)))
        rows.append(row)
    test_header = ["vs best single", *(f"{c.domain}: {c.dataset}" for c in comparison.columns)]
    test_rows = []
    for label, cells in comparison.rows.items():
        texts = [vs_best_text(cells[c.dataset]) if c.dataset in cells else "" for c in comparison.columns]
        if any(texts):
            test_rows.append([label, *texts])
    return header, rows, test_header, test_rows


def _escape_markdown(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; ``|`` inside a cell is escaped so it cannot split the cell."""
    lines = ["| " + " | ".join(_escape_markdown(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_escape_markdown(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(comparison: Comparison) -> str:
    header, rows, test_header, test_rows = _grids(comparison)
    parts = [markdown_table(header, rows)]
    if test_rows:
        parts.append(markdown_table(test_header, test_rows))
    parts.append(LEGEND)
    parts += [f"> warning: {_escape_markdown(w)}" for w in comparison.warnings]
    return "\n\n".join(parts)


def records(comparison: Comparison) -> list[dict[str, Any]]:
    """One flat record per cell: row, method, dataset, domain, mean, n, se, interval, seeds, test."""
    found = []
    domains = {c.dataset: c.domain for c in comparison.columns}
    for label, cells in comparison.rows.items():
        for dataset, cell in cells.items():
            test = cell.vs_best
            found.append(
                {
                    "row": label,
                    "method": comparison.methods.get(label, label),
                    "dataset": dataset,
                    "domain": domains[dataset],
                    "mean": cell.mean,
                    "n": cell.n,
                    "se": cell.se,
                    "ci_low": cell.ci[0] if cell.ci else None,
                    "ci_high": cell.ci[1] if cell.ci else None,
                    "seeds": cell.seeds,
                    "seed_sd": cell.seed_sd,
                    "vs_best_improvement": test.improvement if test else None,
                    "vs_best_p_value": test.p_value if test else None,
                    "vs_best_test": test.test if test else None,
                    "vs_best_n": test.n if test else None,
                    "runs": [str(r.directory) for r in cell.runs],
                }
            )
    return found


def render_csv(comparison: Comparison) -> str:
    rows = records(comparison)
    buffer = io.StringIO()
    fields = [k for k in rows[0] if k != "runs"] if rows else ["row"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue().rstrip("\n")


def render_json(comparison: Comparison) -> str:
    data = {
        "columns": [{"dataset": c.dataset, "domain": c.domain, "normalize": c.normalize} for c in comparison.columns],
        "cells": records(comparison),
        "averages": comparison.averages,
        "warnings": comparison.warnings,
    }
    return json.dumps(data, indent=2)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule"]
    lines.append(" & ".join(latex_escape(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def render_latex(comparison: Comparison) -> str:
    """booktabs tabulars (``\\usepackage{booktabs}``), the legend as a comment."""
    header, rows, test_header, test_rows = _grids(comparison)
    lines = [f"% {LEGEND}", *_latex_table(header, rows)]
    if test_rows:
        lines += ["", *_latex_table(test_header, test_rows)]
    lines += [f"% warning: {w}" for w in comparison.warnings]
    return "\n".join(lines)


def render(comparison: Comparison, output_format: str) -> str:
    renderers = {"markdown": render_markdown, "csv": render_csv, "json": render_json, "latex": render_latex}
    return renderers[output_format](comparison)
