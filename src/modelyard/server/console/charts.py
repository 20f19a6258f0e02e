"""Server-side SVG charts: numbers in, path data out, drawn by the ``chart`` macro (no chart library, no script).

Inputs are already small (the service layer downsamples long histories), so a chart of a 100,000-step metric is a
few kilobytes of SVG that any browser draws at once.
"""

from __future__ import annotations

import math

WIDTH, HEIGHT = 900, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 10, 22


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9 and len(ticks) < 12:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000 or abs(value) < 0.001:
        return f"{value:.2g}"
    return f"{value:.4g}"


class _Frame:
    def __init__(self, xs: list[float], ys: list[float], width: int, height: int):
        self.width, self.height = width, height
        self.x0, self.x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
        self.y0, self.y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 0.5, self.x1 + 0.5
        if self.y1 == self.y0:
            pad = abs(self.y0) * 0.05 or 0.5
            self.y0, self.y1 = self.y0 - pad, self.y1 + pad
        else:
            pad = (self.y1 - self.y0) * 0.05
            self.y0, self.y1 = self.y0 - pad, self.y1 + pad

    def x(self, value: float) -> float:
        return round(LEFT + (value - self.x0) / (self.x1 - self.x0) * (self.width - LEFT - RIGHT), 1)

    def y(self, value: float) -> float:
        return round(self.height - BOTTOM - (value - self.y0) / (self.y1 - self.y0) * (self.height - TOP - BOTTOM), 1)

    def path(self, points) -> str:
        parts = [f"{'M' if i == 0 else 'L'}{self.x(px)},{self.y(py)}" for i, (px, py) in enumerate(points)]
        return "".join(parts)

    def ticks(self) -> tuple[list[dict], list[dict]]:
        yticks = [{"y": self.y(v), "label": _label(v)} for v in _nice_ticks(self.y0, self.y1)]
        xticks = [{"x": self.x(v), "label": _label(v)} for v in _nice_ticks(self.x0, self.x1, 6)]
        return xticks, yticks


def _finite(points) -> list:
    return [p for p in points if all(isinstance(v, (int, float)) and math.isfinite(v) for v in p[:2])]


def line_chart(series: list[tuple[str, list]], title: str, note: str = "", bands: list[tuple[list, list, int]] = (),
               width: int = WIDTH, height: int = HEIGHT) -> dict:
    """A chart of several ``(label, [[x, y], ...])`` series on shared axes.

    Args:
        bands: ``(upper, lower, color)`` point lists drawn as shaded areas (mean ± std).
    """
    # a NaN or an infinite value (a diverged loss) has no place on an axis: draw the finite points, say how many not
    total = sum(len(pts) for _, pts in series)
    series = [(label, _finite(pts)) for label, pts in series]
    bands = [(_finite(up), _finite(low), color) for up, low, color in bands]
    skipped = total - sum(len(pts) for _, pts in series)
    if skipped:
        note = "; ".join(filter(None, [note, f"{skipped} non-finite point{'s' if skipped != 1 else ''} "
                                             "(NaN or infinite) not drawn"]))
    xs = [p[0] for _, pts in series for p in pts] + [p[0] for up, _, _ in bands for p in up]
    ys = ([p[1] for _, pts in series for p in pts] + [p[1] for up, _, _ in bands for p in up]
          + [p[1] for _, low, _ in bands for p in low])
    frame = _Frame(xs, ys, width, height)
    xticks, yticks = frame.ticks()
    # few points get dots too, so a short or single-point series is visible
    drawn = [{"label": label, "d": frame.path(pts), "color": i % 10,
              "dots": [(frame.x(x), frame.y(y)) for x, y in pts] if len(pts) <= 40 else []}
             for i, (label, pts) in enumerate(series) if pts]
    shaded = [{"d": frame.path(list(up) + list(reversed(low))) + "Z", "color": color % 10}
              for up, low, color in bands if up]
    return {"title": title, "note": note, "width": width, "height": height, "left": LEFT, "right": RIGHT,
            "series": drawn, "bands": shaded, "xticks": xticks, "yticks": yticks}


def error_bars(groups: list[dict], title: str, width: int = WIDTH, height: int = HEIGHT) -> dict:
    """Mean ± std per group as points with whiskers, drawn by the line-chart macro: one short series per group."""
    series, bands = [], []
    for i, group in enumerate(groups):
        low, high = group["mean"] - group["std"], group["mean"] + group["std"]
        series.append((f"{group['value']} (n={group['n']})", [[i + 0.75, group["mean"]], [i + 1.25, group["mean"]]]))
        bands.append(([[i + 0.8, high], [i + 1.2, high]], [[i + 0.8, low], [i + 1.2, low]], i))
    chart = line_chart(series, title, note="line: mean · shaded: ± 1 std", bands=bands, width=width, height=height)
    chart["xticks"] = []
    return chart
