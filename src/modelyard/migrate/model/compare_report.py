"""A self-contained HTML report of a CompareResult: verdict card, per-output table, and a plot of error and
cosine against layer depth (inline SVG, no scripts or external assets) with the first divergence and the noise
floor marked."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

_COLORS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", None: "#57606a"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1f2328;max-width:1100px}
.card{border-radius:8px;padding:1rem 1.25rem;color:#fff;margin-bottom:1.5rem}
.card h1{margin:0 0 .25rem 0;font-size:1.6rem}.card p{margin:.15rem 0}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}
.v{font-weight:600}.muted{color:#57606a;font-size:.85rem}
svg text{font-size:11px;fill:#1f2328}
"""


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 1e-3 or abs(value) >= 1e5:
            return f"{value:.3e}"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _verdict(value) -> str:
    color = _COLORS.get(value, _COLORS[None])
    return f'<span class="v" style="color:{color}">{html.escape(str(value or "—"))}</span>'


def render_html(result: dict) -> str:
    """The report for a ``modelyard.compare/1`` dict."""
    verdict = result["verdict"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Modelyard compare: {html.escape(result['target'])} vs {html.escape(result['reference'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<div class="card" style="background:{_COLORS.get(verdict, "#57606a")}">',
        f"<h1>{html.escape(verdict.upper())}</h1>",
        f"<p>target <b>{html.escape(result['target'])}</b> ({html.escape(result['target_model'])})</p>",
        f"<p>reference <b>{html.escape(result['reference'])}</b> ({html.escape(result['reference_model'])}),"
        f" {result['samples']} samples, threshold preset {html.escape(result['thresholds']['preset'])}</p>",
    ]
    for reason in result.get("reasons", [])[:8]:
        parts.append(f"<p>• {html.escape(reason)}</p>")
    parts.append("</div>")

    parts.append("<h2>Outputs</h2><table><tr><th>output</th><th>shape</th><th>max abs</th><th>max rel</th>"
                 "<th>mean abs</th><th>RMSE</th><th>cosine</th><th>SQNR dB</th><th>‰ ratio</th><th>nan/inf</th>"
                 "<th>allclose</th><th>× floor</th><th>verdict</th></tr>")
    for o in result["outputs"]:
        parts.append(
            f"<tr><td>{html.escape(o['name'])}</td><td>{html.escape(str(o['shape']))}</td>"
            f"<td>{_fmt(o['max_abs_err'])}</td><td>{_fmt(o['max_rel_err'])}</td><td>{_fmt(o['mean_abs_err'])}</td>"
            f"<td>{_fmt(o['rmse'])}</td><td>{_fmt(o['cosine'], 6)}</td><td>{_fmt(o['sqnr_db'], 1)}</td>"
            f"<td>{_fmt(o['err_ratio_permille'])}</td><td>{o['nonfinite_mismatch']}</td><td>{_fmt(o['allclose'])}</td>"
            f"<td>{_fmt(o.get('noise_floor_ratio'), 2)}</td><td>{_verdict(o['verdict'])}</td></tr>"
        )
    parts.append("</table>")

    task = result.get("task")
    if task:
        items = {k: v for k, v in task.items() if k not in ("reasons",)}
        parts.append("<h2>Task agreement</h2><table>")
        for key, value in items.items():
            parts.append(
                f"<tr><td>{html.escape(key)}</td><td>{_verdict(value) if key == 'verdict' else _fmt(value)}</td></tr>"
            )
        parts.append("</table>")

    floor = result.get("noise_floor") or {}
    parts.append(f"<h2>Noise floor</h2><p class='muted'>{html.escape(floor.get('description', ''))}, "
                 f"{floor.get('samples', 0)} samples.</p>")

    layers = result.get("layers") or []
    if layers:
        fd = result.get("first_divergence")
        parts.append("<h2>Layers</h2>")
        if fd:
            parts.append(
                f"<p>First divergence: layer #{fd['index']} <b>{html.escape(fd['name'])}</b> "
                f"(target tensor <code>{html.escape(str(fd['target_name']))}</code>), "
                f"<b>{html.escape(str(fd['kind']))}</b> error ({html.escape(str(fd.get('kind_method')))}).</p>"
            )
        else:
            parts.append("<p>No layer diverges.</p>")
        parts.append(plot_svg(layers, fd["index"] if fd else None))
        parts.append("<table><tr><th>#</th><th>layer</th><th>target tensor</th><th>max abs</th><th>cosine</th>"
                     "<th>floor</th><th>local max abs</th><th>kind</th><th>verdict</th></tr>")
        for row in layers:
            parts.append(
                f"<tr><td>{row['index']}</td><td style='text-align:left'>{html.escape(row['name'])}</td>"
                f"<td style='text-align:left'>{html.escape(str(row['target_name']))}</td>"
                f"<td>{_fmt(row['max_abs_err'])}</td><td>{_fmt(row['cosine'], 6)}</td>"
                f"<td>{_fmt(row.get('noise_floor_max_abs_err'))}</td><td>{_fmt(row['local_max_abs_err'])}</td>"
                f"<td>{html.escape(str(row['kind'] or ''))}</td><td>{_verdict(row['verdict'])}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<details><summary>JSON</summary><pre>")
    parts.append(html.escape(json.dumps(result, indent=1, default=str)))
    parts.append("</pre></details></body></html>")
    return "\n".join(parts)


def plot_svg(layers: list[dict], first_index: int | None, width: int = 1000, height: int = 320) -> str:
    """Max abs error (log scale, left axis) and cosine (right axis) against layer index, with the per-layer noise
    floor dashed and the first divergence as a vertical line."""
    left, right, top, bottom = 60, 60, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(layers)

    def x(i: int) -> float:
        return left + (plot_w * i / max(1, n - 1))

    errors = [r["max_abs_err"] for r in layers if r["max_abs_err"]] + [
        r.get("noise_floor_max_abs_err") for r in layers if r.get("noise_floor_max_abs_err")
    ]
    lo = math.floor(math.log10(min(errors))) if errors else -8
    hi = math.ceil(math.log10(max(errors))) if errors else 0
    hi = max(hi, lo + 1)

    def y_err(value: float | None) -> float:
        v = max(value or 10.0**lo, 10.0**lo)
        return top + plot_h * (1 - (math.log10(v) - lo) / (hi - lo))

    cosines = [r["cosine"] for r in layers if r["cosine"] is not None]
    c_lo = min([*cosines, 0.99])
    c_lo = math.floor(c_lo * 100) / 100

    def y_cos(value: float) -> float:
        return top + plot_h * (1 - (value - c_lo) / max(1e-9, 1 - c_lo))

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="error and cosine by layer">',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f6f8fa" stroke="#d0d7de"/>']
    for exp in range(lo, hi + 1):
        y = y_err(10.0**exp)
        svg.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        svg.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{exp}</text>')
    for value in (c_lo, (c_lo + 1) / 2, 1.0):
        svg.append(f'<text x="{left + plot_w + 6}" y="{y_cos(value) + 4:.1f}">{value:.3f}</text>')
    if first_index is not None:
        fx = x(first_index)
        svg.append(
            f'<line x1="{fx:.1f}" x2="{fx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#cf222e" stroke-width="2"/>'
        )
        svg.append(f'<text x="{fx + 4:.1f}" y="{top + 12}" fill="#cf222e">first divergence #{first_index}</text>')
    floor_points = [(x(i), y_err(r.get("noise_floor_max_abs_err"))) for i, r in enumerate(layers)
                    if r.get("noise_floor_max_abs_err")]
    if floor_points:
        pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in floor_points)
        svg.append(f'<polyline points="{pts}" fill="none" stroke="#8c959f" stroke-dasharray="5,4"/>')
    err_pts = " ".join(f"{x(i):.1f},{y_err(r['max_abs_err']):.1f}" for i, r in enumerate(layers))
    svg.append(f'<polyline points="{err_pts}" fill="none" stroke="#0969da" stroke-width="1.5"/>')
    cos_pts = " ".join(f"{x(i):.1f},{y_cos(r['cosine']):.1f}" for i, r in enumerate(layers) if r["cosine"] is not None)
    svg.append(f'<polyline points="{cos_pts}" fill="none" stroke="#8250df" stroke-width="1.5"/>')
    for i, r in enumerate(layers):
        color = _COLORS.get(r["verdict"], "#57606a")
        svg.append(f'<circle cx="{x(i):.1f}" cy="{y_err(r["max_abs_err"]):.1f}" r="2.5" fill="{color}">'
                   f'<title>#{i} {html.escape(r["name"])}: max abs {_fmt(r["max_abs_err"])}, '
                   f'cosine {_fmt(r["cosine"], 6)}</title></circle>')
    legend_y = height - 12
    svg.append(f'<text x="{left}" y="{legend_y}"><tspan fill="#0969da">━ max abs error (log, left)</tspan>'
               f'  <tspan fill="#8250df">━ cosine (right)</tspan>  <tspan fill="#8c959f">┅ noise floor</tspan>'
               f'  layer depth →</text>')
    svg.append("</svg>")
    return "\n".join(svg)


def write_report(result: dict, path: str | Path) -> Path:
    """Write the HTML report atomically; returns its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render_html(result), encoding="utf-8")
    tmp.replace(target)
    return target
