"""One self-contained HTML page of the report: tables inline, figures embedded as data URIs."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from moco_core.report.tables import ResultsTable, domain_spans

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{padding:0.25em 0.6em;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.ref td{background:#f4f4f4;font-style:italic}
.up{color:#1a7f37}img{max-width:100%;margin:0.5em 0}p.note{color:#555;font-size:0.9em}
"""


def results_html(table: ResultsTable) -> str:
    head = "".join(f"<th>{escape(c.label)}</th>" for c in table.columns)
    domains = "".join(f'<th colspan="{n}">{escape(d)}</th>' for d, n in domain_spans(table))
    rows = []
    for r, (method, row) in enumerate(table.rows):
        cells = []
        for c, value in enumerate(row):
            text = "" if value is None else f"{value:.4f}"
            mark = table.marks[r][c]
            text = f"<b>{text}</b>" if mark == "best" else f"<u>{text}</u>" if mark == "second" else text
            text += ' <span class="up">↑</span>' if table.up[r][c] else ""
            cells.append(f'<td class="n">{text}</td>')
        css = ' class="ref"' if r == 0 and table.reference else ""
        rows.append(f"<tr{css}><td>{escape(method)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th></th>{domains}</tr><tr><th>method</th>{head}</tr>{''.join(rows)}</table>"


def plain_table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{escape(heading)}</h2>{content}" for heading, content in sections)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )
