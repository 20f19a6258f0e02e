"""A self-contained HTML evaluation report: inline SVG charts, inline PNG thumbnails, no scripts, no CDN.

The charts are small hand-written SVG (a confusion-matrix heat map, line charts for ROC/PR/calibration, a bar
chart for feature importance, a scatter for residuals), so the report opens anywhere, offline, forever.
"""

from __future__ import annotations

import base64
import html
import json

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f6f6f6}td.l,th.l{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{border:1px solid #eee;padding:8px;border-radius:6px}.muted{color:#777}img.px{image-rendering:pixelated}
svg text{font:11px system-ui,sans-serif}
.warn{background:#fff4e5;border-left:4px solid #e8a33d;padding:6px 10px}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value, digits: int = 4) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.{digits}g}"
    return esc(value)


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _text_width(text: str, px_per_char: float = 6.6) -> float:
    """Rough width of 11 px system-ui text (no font metrics offline; errs wide so nothing is clipped)."""
    return len(text) * px_per_char


def heatmap_svg(matrix: list[list[int]], labels: list[str], title: str = "") -> str:
    """A confusion matrix: rows are true classes, columns predicted; darker is more."""
    n = len(matrix)
    cell = max(14, min(44, 440 // max(1, n)))
    left, top = 110, 40
    shown = [label[:14] for label in labels]
    # column labels are rotated 45 degrees below the grid: they reach right and down by ~0.71 of their length
    reach = 0.71 * max((_text_width(label) for label in shown), default=0) + 12
    width = int(max(left + cell * n + reach, 4 + _text_width(title) * 1.1 + 12))
    height = int(top + cell * n + reach + 8)
    peak = max((max(row) for row in matrix), default=1) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             f'<text x="4" y="14" font-weight="bold">{esc(title)}</text>',
             f'<text x="{left + cell * n / 2}" y="{top - 8}" text-anchor="middle">predicted</text>']
    for i, row in enumerate(matrix):
        parts.append(f'<text x="{left - 6}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end">'
                     f'{esc(shown[i])}</text>')
        for j, count in enumerate(row):
            shade = count / peak
            fill = f"rgb({int(255 - 200 * shade)},{int(255 - 150 * shade)},{int(255 - 60 * shade)})"
            parts.append(f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell}" height="{cell}" '
                         f'fill="{fill}" stroke="#fff"><title>true {esc(labels[i])}, predicted {esc(labels[j])}: '
                         f'{count}</title></rect>')
            if cell >= 22:
                color = "#fff" if shade > 0.6 else "#222"
                parts.append(f'<text x="{left + cell * j + cell / 2}" y="{top + cell * i + cell / 2 + 4}" '
                             f'text-anchor="middle" fill="{color}">{count}</text>')
    for j, label in enumerate(shown):
        x = left + cell * j + cell / 2
        y = top + cell * n + 8
        parts.append(f'<text x="{x}" y="{y}" transform="rotate(45 {x} {y})">{esc(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart_svg(series: list[dict], title: str, x_label: str, y_label: str, diagonal: bool = False,
                   width: int = 360, height: int = 300) -> str:
    """Lines on [0, 1] x [0, 1]: ``series`` items have ``name``, ``x``, ``y``. The legend sits below the plot,
    where it cannot hide a curve (precision-recall curves fill the top right corner)."""
    left, top, right, bottom = 45, 24, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    series = series[:10]
    legend_top = height + 4
    height += 14 * len(series) + 8

    def px(x: float) -> float:
        return left + plot_w * min(1.0, max(0.0, x))

    def py(y: float) -> float:
        return top + plot_h * (1.0 - min(1.0, max(0.0, y)))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             f'<text x="{left}" y="14" font-weight="bold">{esc(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{px(tick)}" y="{top + plot_h + 14}" text-anchor="middle">{tick:g}</text>')
        parts.append(f'<text x="{left - 4}" y="{py(tick) + 4}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{legend_top - 10}" text-anchor="middle">{esc(x_label)}</text>')
    parts.append(f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
                 f'text-anchor="middle">{esc(y_label)}</text>')
    if diagonal:
        parts.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#bbb" '
                     'stroke-dasharray="4 3"/>')
    for index, item in enumerate(series):
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(item["x"], item["y"], strict=True))
        color = PALETTE[index % len(PALETTE)]
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6">'
                     f'<title>{esc(item["name"])}</title></polyline>')
        y = legend_top + 14 * index + 10
        parts.append(f'<line x1="{left}" y1="{y - 4}" x2="{left + 16}" y2="{y - 4}" stroke="{color}" '
                     'stroke-width="2"/>')
        parts.append(f'<text x="{left + 22}" y="{y}" fill="{color}">{esc(item["name"][:40])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart_svg(items: list[tuple[str, float]], title: str, width: int = 520) -> str:
    """Horizontal bars, longest first (feature importance)."""
    items = items[:25]
    row = 18
    left, top = 170, 24
    height = top + row * len(items) + 20
    peak = max((abs(v) for _, v in items), default=1.0) or 1.0
    plot_w = width - left - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             f'<text x="4" y="14" font-weight="bold">{esc(title)}</text>']
    for i, (name, value) in enumerate(items):
        y = top + row * i
        length = plot_w * abs(value) / peak
        color = PALETTE[0] if value >= 0 else PALETTE[3]
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{esc(name[:26])}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{length:.1f}" height="{row - 5}" fill="{color}"/>')
        parts.append(f'<text x="{left + length + 4}" y="{y + 12}">{value:.4g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def scatter_svg(xs: list[float], ys: list[float], title: str, x_label: str, y_label: str, zero_line: bool = False,
                identity: bool = False, width: int = 380, height: int = 300) -> str:
    left, top, right, bottom = 55, 24, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    if not xs:
        return ""
    x_min, x_max = min(xs), max(xs)
    y_min, y_max = min(ys), max(ys)
    if identity:
        x_min = y_min = min(x_min, y_min)
        x_max = y_max = max(x_max, y_max)
    x_span, y_span = (x_max - x_min) or 1.0, (y_max - y_min) or 1.0

    def px(x):
        return left + plot_w * (x - x_min) / x_span

    def py(y):
        return top + plot_h * (1 - (y - y_min) / y_span)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             f'<text x="{left}" y="14" font-weight="bold">{esc(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
             f'<text x="{left}" y="{top + plot_h + 14}">{x_min:.3g}</text>',
             f'<text x="{left + plot_w}" y="{top + plot_h + 14}" text-anchor="end">{x_max:.3g}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{y_min:.3g}</text>',
             f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{y_max:.3g}</text>',
             f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{esc(x_label)}</text>',
             f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
             f'text-anchor="middle">{esc(y_label)}</text>']
    if zero_line and y_min < 0 < y_max:
        parts.append(f'<line x1="{left}" y1="{py(0):.1f}" x2="{left + plot_w}" y2="{py(0):.1f}" stroke="#d62728" '
                     'stroke-dasharray="4 3"/>')
    if identity:
        parts.append(f'<line x1="{px(x_min):.1f}" y1="{py(y_min):.1f}" x2="{px(x_max):.1f}" y2="{py(y_max):.1f}" '
                     'stroke="#d62728" stroke-dasharray="4 3"/>')
    for x, y in zip(xs, ys, strict=True):
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" fill="{PALETTE[0]}" fill-opacity="0.6"/>')
    parts.append("</svg>")
    return "".join(parts)


def metrics_table(metrics: dict) -> str:
    rows = "".join(f'<tr><th class="l">{esc(k)}</th><td>{fmt(v)}</td></tr>' for k, v in metrics.items()
                   if isinstance(v, (int, float)))
    return f"<table>{rows}</table>"


def per_class_table(per_class: dict) -> str:
    head = '<tr><th class="l">class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>'
    rows = "".join(f'<tr><td class="l">{esc(name)}</td><td>{fmt(v["precision"])}</td><td>{fmt(v["recall"])}</td>'
                   f'<td>{fmt(v["f1"])}</td><td>{v["support"]}</td></tr>' for name, v in per_class.items())
    return f"<table>{head}{rows}</table>"


def page(title: str, sections: list[tuple[str, str]], data: dict) -> str:
    """The whole document; ``data`` (the evaluation JSON) is embedded for machines as well."""
    body = "".join(f"<h2>{esc(name)}</h2>{content}" for name, content in sections if content)
    embedded = json.dumps(data).replace("</", "<\\/")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1>{body}"
            f'<script type="application/json" id="modelyard-evaluation">{embedded}</script></body></html>')
