"""Writing every analysis of a sweep directory: tables (markdown, CSV, LaTeX), figures and HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from moco_core.report.collect import collect_cells
from moco_core.report.controls import compute_matched
from moco_core.report.cost import COST_HEADER, COST_NOTE, cost_rows
from moco_core.report.emergence import emergence
from moco_core.report.html import image_html, page, plain_table_html, results_html
from moco_core.report.plots import cost_plot, scaling_plots
from moco_core.report.routing import routing_points
from moco_core.report.tables import csv_text, render_latex, render_markdown, render_table_csv, results_table
from moco_core.runfiles import prepare_output_dir

LEGEND = "Bold: best method; italics/underline: second; ↑: above the pool's best single model."
EMERGENCE_HEADER = ["pool", "method", "domain", "items no single model solved", "solved by the method", "share"]
CONTROL_HEADER = ["pool", "dataset", "method", "score", "tokens/item", "control", "control score"]
CONTROL_HEADER += ["control tokens/item", "gain"]
ROUTING_HEADER = ["pool", "bank", "name", "kind", "quality", "cost/query", "gap to oracle", "above frontier"]


@dataclass
class ReportFiles:
    directory: Path
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _budget(value: float | None, unit: str) -> str:
    """Tokens per item as a number; a run without token counts shows generations, marked as such."""
    return "" if value is None else f"{value:.1f}" if unit == "tokens" else f"{value:.2f} gens"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def build_report(root: str | Path, out_dir: str | Path | None = None) -> ReportFiles:
    """Read every finished run under ``root`` and write the report into ``out_dir`` (default ``root/report``)."""
    root = Path(root)
    cells = collect_cells(root)
    out = Path(out_dir) if out_dir else root / "report"
    prepare_output_dir(out)
    report = ReportFiles(out)

    def write(name: str, text: str) -> None:
        path = out / name
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        report.files.append(path)

    tables = [results_table(cells, pool) for pool in dict.fromkeys(c.pool for c in cells)]
    markdown = "\n\n".join(f"### pool {t.pool}\n\n{render_markdown(t)}" for t in tables) + f"\n\n{LEGEND}"
    write("results.md", markdown)
    write(
        "results.csv",
        "\n".join(
            render_table_csv(t) if i == 0 else render_table_csv(t).split("\n", 1)[1] for i, t in enumerate(tables)
        ),
    )
    write(
        "results.tex",
        "\n\n".join(f"% pool {t.pool} (needs \\usepackage{{booktabs}})\n{render_latex(t)}" for t in tables),
    )

    emerging = [[r.pool, r.method, r.domain, str(r.unsolved), str(r.solved), _fmt(r.share)] for r in emergence(cells)]
    write("emergence.md", _markdown_table(EMERGENCE_HEADER, emerging) if emerging else "no per-model item scores")
    write("emergence.csv", csv_text(EMERGENCE_HEADER, emerging))

    controls = [
        [
            r.pool,
            r.dataset,
            r.method,
            _fmt(r.score),
            _budget(r.budget, r.unit),
            r.control or "",
            _fmt(r.control_score),
            _budget(r.control_budget, r.unit),
            _fmt(r.gain),
        ]
        for r in compute_matched(cells)
    ]
    write("controls.md", _markdown_table(CONTROL_HEADER, controls))
    write("controls.csv", csv_text(CONTROL_HEADER, controls))

    points, aiq = routing_points(cells)
    routing = [
        [
            p.pool,
            p.dataset,
            p.name,
            p.kind,
            _fmt(p.quality),
            f"{p.cost:.6g}",
            _fmt(p.oracle_gap),
            _fmt(p.above_frontier),
        ]
        for p in points
    ]
    costs = cost_rows(cells)
    write("cost.md", _markdown_table(COST_HEADER, costs))
    write("cost.csv", csv_text(COST_HEADER, costs))

    routing_note = "".join(f"\nsingle-model frontier AIQ, pool {p}, {d}: {v:.4f}" for (p, d), v in aiq.items())
    if routing:
        write("routing.md", _markdown_table(ROUTING_HEADER, routing) + "\n" + routing_note)
        write("routing.csv", csv_text(ROUTING_HEADER, routing))

    figures = scaling_plots(cells, out) + cost_plot(cells, out)
    report.files += figures
    no_control = all(not row[5] for row in controls)
    control_note = (
        '<p class="note">No self-consistency or best-of-N run in this sweep: add '
        "<code>controls: compute_matched</code> to the sweep file to run one per method at its token budget.</p>"
        if no_control
        else ""
    )
    routing_html = plain_table_html(ROUTING_HEADER, routing) + f"<pre>{escape(routing_note)}</pre>"
    sections = [(f"Results: pool {t.pool}", results_html(t)) for t in tables]
    sections[-1] = (sections[-1][0], sections[-1][1] + f'<p class="note">{LEGEND}</p>')
    sections += [
        ("Collaborative emergence", plain_table_html(EMERGENCE_HEADER, emerging) if emerging else "<p>none</p>"),
        ("Compute-matched controls", plain_table_html(CONTROL_HEADER, controls) + control_note),
        ("Cost", plain_table_html(COST_HEADER, costs) + f'<p class="note">{escape(COST_NOTE)}</p>'),
        *([("Routing on response banks", routing_html)] if routing else []),
        ("Figures", "".join(image_html(p) for p in figures if p.suffix == ".png") or "<p>none</p>"),
    ]
    write("report.html", page(f"moco report: {root.name}", sections))
    report.markdown = markdown
    return report
