"""Render an ``Analysis`` as JSON (``modelyard.analysis/1``), Markdown, one self-contained HTML page, or CSV.

The HTML page has summary cards, a bar chart by category (inline SVG) and a findings table with code snippets
that sorts on a header click and filters as you type - inline CSS and JS, no CDN, so it opens offline and can be
attached to a ticket. The CSV has one row per finding, in the spirit of msFmkTransplt's ``unsupported_api.csv``.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable

from modelyard.migrate.code.analyze import Analysis
from modelyard.migrate.code.rewrite import ChangeRow

FORMATS = ("json", "md", "html", "csv")
CSV_COLUMNS = ("file", "line", "column", "rule", "api", "category", "status", "effort_level", "effort_hours_low",
               "effort_hours_high", "message", "suggestion", "snippet")
_STATUS_COLOURS = {"supported": "#2e7d32", "auto": "#1565c0", "manual": "#ef6c00", "unsupported": "#c62828"}


def format_for(path: str | None, fmt: str | None) -> str:
    """The format to write: explicit, else from the output file's extension, else JSON."""
    if fmt:
        return fmt
    if path:
        suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        if suffix in ("htm", "html"):
            return "html"
        if suffix in ("md", "markdown"):
            return "md"
        if suffix == "csv":
            return "csv"
    return "json"


def render(analysis: Analysis, fmt: str) -> str:
    """The report as text in ``fmt`` (json, md, html, csv)."""
    if fmt == "json":
        return json.dumps(analysis.to_dict(), indent=2) + "\n"
    if fmt == "md":
        return render_markdown(analysis)
    if fmt == "html":
        return render_html(analysis)
    if fmt == "csv":
        return render_csv(analysis)
    raise ValueError(f"unknown report format {fmt!r}")


def _csv_text(header: Iterable[str], rows: Iterable[Iterable]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def render_csv(analysis: Analysis) -> str:
    rows = []
    for finding in analysis.iter_findings():
        d = analysis.finding_dict(finding)
        rows.append([d["file"], d["line"], d["column"], d["rule"], d["api"], d["category"], d["status"],
                     d["effort"]["level"], d["effort"]["hours"][0], d["effort"]["hours"][1], d["message"],
                     d["suggestion"], d["snippet"]])
    return _csv_text(CSV_COLUMNS, rows)


def write_change_list(rows: Iterable[ChangeRow]) -> str:
    """``change_list.csv``: file, line, rule, before, after."""
    return _csv_text(
        ("file", "line", "rule", "before", "after"), ([r.file, r.line, r.rule, r.before, r.after] for r in rows)
    )


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(analysis: Analysis) -> str:
    data = analysis.to_dict()
    s = data["summary"]
    out = [
        f"# Migration readiness: target `{analysis.target}`",
        "",
        f"Root: `{analysis.root}`",
        "",
        f"**Readiness {s['readiness_score']}/100** - estimated effort {s['effort_hours']['low']}-"
        f"{s['effort_hours']['high']} person-hours.",
        "",
        "| files | python files | lines | findings | auto | manual | unsupported |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['files_scanned']} | {s['python_files']} | {s['lines']} | {s['findings']} | {s['auto']} | {s['manual']} "
        f"| {s['unsupported']} |",
        "",
    ]
    if s["by_category"]:
        out += ["## By category", "", "| category | findings |", "|---|---:|"]
        out += [f"| {k} | {v} |" for k, v in s["by_category"].items()] + [""]
    files = [f for f in data["files"] if f["findings"] or f["parse_error"]]
    if files:
        out += [
            "## Files",
            "",
            "| file | findings | auto | manual | unsupported | note |",
            "|---|---:|---:|---:|---:|---|",
        ]
        out += [f"| `{_md_cell(f['path'])}` | {f['findings']} | {f['auto']} | {f['manual']} | {f['unsupported']} | "
                f"{_md_cell(f['parse_error'] or '')} |" for f in files] + [""]
    if data["findings"]:
        out += ["## Findings", ""]
        current = None
        for f in data["findings"]:
            if f["file"] != current:
                current = f["file"]
                out += [f"### `{current}`", ""]
            out.append(
                f"- **L{f['line']}** `{f['rule']}` ({f['status']}, {f['category']}, effort {f['effort']['level']}): "
                f"{f['message']}  "
            )
            out.append(f"  _{f['suggestion']}_")
            if f["snippet"]:
                out.append(f"  `{f['snippet'].replace('`', chr(39))}`")
        out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}.root{color:#666;font-size:13px;margin-bottom:16px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:20px}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px 16px;min-width:120px}
.card .v{font-size:26px;font-weight:600}.card .k{font-size:12px;color:#666;text-transform:uppercase}
.chart{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px;margin-bottom:20px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #eee;padding:6px 8px;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f0f0f0;user-select:none;position:sticky;top:0}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#f5f5f5;padding:1px 4px;
 border-radius:3px}
.st{color:#fff;border-radius:10px;padding:1px 8px;font-size:11px;white-space:nowrap}
#filter{margin:8px 0;padding:6px;width:320px}
"""

_JS = """
(function(){
 var table=document.getElementById('findings');if(!table)return;
 var body=table.tBodies[0];var dir={};
 table.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var rows=Array.prototype.slice.call(body.rows);var d=dir[i]=-(dir[i]||-1);
  rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,
   y=b.cells[i].dataset.v||b.cells[i].textContent;
   var nx=parseFloat(x),ny=parseFloat(y);if(!isNaN(nx)&&!isNaN(ny))return d*(nx-ny);return d*x.localeCompare(y);});
  rows.forEach(function(r){body.appendChild(r);});});});
 document.getElementById('filter').addEventListener('input',function(e){var q=e.target.value.toLowerCase();
  Array.prototype.forEach.call(body.rows,function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':'';});});
})();
"""


def _bar_chart(counts: dict[str, int]) -> str:
    if not counts:
        return "<p>No findings.</p>"
    width, bar_h, gap, label_w = 640, 22, 6, 150
    top = max(counts.values())
    height = len(counts) * (bar_h + gap)
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="findings by category">']
    for i, (name, value) in enumerate(sorted(counts.items(), key=lambda kv: -kv[1])):
        y = i * (bar_h + gap)
        length = max(2, int((width - label_w - 60) * value / top))
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{html.escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{length}" height="{bar_h}" fill="#5c6bc0" rx="3"/>')
        parts.append(f'<text x="{label_w + length + 6}" y="{y + 15}" font-size="12">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(analysis: Analysis) -> str:
    data = analysis.to_dict()
    s = data["summary"]
    e = html.escape
    cards = [("readiness", f"{s['readiness_score']}/100"),
             ("effort (h)", f"{s['effort_hours']['low']}&ndash;{s['effort_hours']['high']}"),
             ("files", s["files_scanned"]), ("lines", s["lines"]), ("findings", s["findings"]), ("auto", s["auto"]),
             ("manual", s["manual"]), ("unsupported", s["unsupported"])]
    rows = []
    for f in data["findings"]:
        colour = _STATUS_COLOURS.get(f["status"], "#555")
        rows.append(
            f'<tr><td>{e(f["file"])}</td><td data-v="{f["line"]}">{f["line"]}</td><td>{e(f["rule"])}</td>'
            f'<td>{e(f["category"])}</td><td data-v="{e(f["status"])}"><span class="st" style="background:{colour}">'
            f'{e(f["status"])}</span></td><td data-v="{f["effort"]["hours"][1]}">{e(f["effort"]["level"])}</td>'
            f"<td>{e(f['message'])}<br><small>{e(f['suggestion'])}</small></td><td><code>{e(f['snippet'])}</code></td></tr>"
        )
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Migration readiness ({e(analysis.target)})</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Migration readiness: target <code>{e(analysis.target)}</code></h1>",
        f'<div class="root">{e(analysis.root)} &middot; schema {e(data["schema"])}</div>',
        '<div class="cards">' + "".join(f'<div class="card"><div class="v">{v}</div><div class="k">{e(k)}</div></div>'
                                        for k, v in cards) + "</div>",
        f'<div class="chart"><b>Findings by category</b><br>{_bar_chart(s["by_category"])}</div>',
        '<input id="filter" placeholder="filter findings...">',
        '<table id="findings"><thead><tr><th>file</th><th>line</th><th>rule</th><th>category</th><th>status</th>'
        "<th>effort</th><th>message / suggestion</th><th>snippet</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
        f"<script>{_JS}</script>",
        "</body></html>",
        "",
    ])
