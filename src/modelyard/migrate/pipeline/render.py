"""Render a ``modelyard.migration-report/1`` document as Markdown and as one self-contained HTML file (inline CSS
and SVG, no scripts, no external assets)."""

from __future__ import annotations

import html
import json

from modelyard.migrate.model.compare_report import _COLORS, _CSS, _fmt, plot_svg
from modelyard.migrate.pipeline.document import CandidateRow, MigrationReport

_EXTRA_CSS = """
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.na{color:#57606a}
h2{border-bottom:1px solid #d0d7de;padding-bottom:.3rem;margin-top:2.2rem}
td.l,th.l{text-align:left}.grid{display:flex;gap:1.5rem;flex-wrap:wrap}
"""


def _mark(passed) -> str:
    return "PASS" if passed is True else ("FAIL" if passed is False else "n/a")


def _md(value) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif value is None:
        text = "—"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(doc: MigrationReport) -> str:
    h = doc.headline
    mig, tests = doc.migration_report, doc.test_report
    out = [f"# Migration report: {doc.name}", "",
           f"Target **{doc.target}**, reference **{doc.reference}**, generated {doc.generated_at}.", "",
           f"**{'ACCEPTED' if doc.accepted else 'NOT ACCEPTED'}** — readiness {_md(h.readiness_score)}/100, "
           f"precision verdict {_md(h.verdict)}, speedup {_md(h.speedup)}x at {_md(h.accuracy)} "
           f"({_md(h.chosen)}).", ""]
    out += ["## Acceptance checklist", ""]
    out += _md_table(["goal", "target", "measured", "result", "note"],
                     [[r.goal, r.target, r.measured, _mark(r.passed), r.note]
                      for r in doc.acceptance])
    out += ["## 1. Migration report", "", "### Readiness", ""]
    ready = mig.readiness
    if ready.before:
        b = ready.before
        out += [f"Before rewrite: readiness {b['readiness_score']}/100, {b['findings']} findings "
                f"({b['auto']} auto, {b['manual']} manual, {b['unsupported']} unsupported), effort "
                f"{b['effort_hours']['low']}–{b['effort_hours']['high']} h."]
        if ready.after:
            a = ready.after
            out += [f"After rewrite: readiness {a['readiness_score']}/100, {a['manual']} manual and "
                    f"{a['unsupported']} unsupported items left, effort {a['effort_hours']['low']}–"
                    f"{a['effort_hours']['high']} h."]
        out.append("")
    else:
        out += [f"Code analysis skipped: {ready.skipped}", ""]
    out += [f"### Change list ({len(mig.changes)} changes in {len(mig.files_changed)} files)", ""]
    out += _md_table(["file", "line", "rule", "before", "after"],
                     [[c["file"], c["line"], c["rule"], c["before"], c["after"]] for c in mig.changes[:200]])
    out += [f"### Manual items left ({len(mig.manual_items)}, {mig.manual_effort_hours['low']}–"
            f"{mig.manual_effort_hours['high']} h)", ""]
    out += _md_table(["file", "line", "rule", "status", "effort (h)", "owner", "what to do"],
                     [[m["file"], m["line"], m["rule"], m["status"], "–".join(str(x) for x in m["effort"]["hours"]),
                       m["owner"], m["suggestion"] or m["message"]] for m in mig.manual_items[:200]])
    cov = mig.coverage
    out += ["### Operator coverage", ""]
    if cov.coverage is not None:
        out += [f"{cov.coverage:.1%} of {cov.total_nodes} nodes run natively on {cov.target}.", ""]
        out += _md_table(["op", "count", "status", "runs on"],
                         [[f["op"], f["count"], f["status"], f["runs_on"]] for f in cov.fallback])
    else:
        out += [f"Skipped: {cov.skipped}", ""]
    p = tests.precision
    out += ["## 2. Test report", "", "### Precision (fp32 conversion)", "",
            f"{_md(p.target)} vs {_md(p.reference)} on {_md(p.samples)} samples: **{_md(p.verdict)}**.", ""]
    out += _md_table(["output", "max abs err", "cosine", "SQNR dB", "verdict"],
                     [[o["name"], o["max_abs_err"], o["cosine"], o["sqnr_db"], o["verdict"]] for o in p.outputs])
    if p.first_divergence:
        fd = p.first_divergence
        out += [f"First divergence: layer #{fd['index']} `{fd['name']}` ({fd['kind']}).", ""]
    elif p.layers:
        out += [f"{len(p.layers)} layers compared, no divergence.", ""]
    tm = tests.task_metrics
    out += ["### Task metrics", ""]
    out += _md_table(["model", "metric", "value"],
                     [["fp32 conversion",
                       "top-1 agreement" if (tm.fp32 or {}).get("top1_agreement") is not None else "task",
                       (tm.fp32 or {}).get("top1_agreement", (tm.fp32 or {}).get("verdict"))],
                      ["chosen configuration", (tm.chosen or {}).get("metric"), (tm.chosen or {}).get("value")]])
    perf = tests.performance
    base, chosen = perf.baseline.by_batch(), perf.chosen.by_batch()
    out += ["### Performance before / after", ""]
    rows = []
    for size in perf.batch_sizes:
        b, c = base.get(size), chosen.get(size)
        rows.append([size, b and b["latency_ms"]["p50"], c and c["latency_ms"]["p50"], b and b["throughput"],
                     c and c["throughput"], (b and c) and round(b["latency_ms"]["p50"] / c["latency_ms"]["p50"], 2)])
    out += _md_table(["batch", f"p50 ms {perf.baseline.backend}", f"p50 ms {perf.chosen.backend}",
                      "samples/s before", "samples/s after", "speedup"], rows)
    best = tests.chosen_configuration
    out += ["### Chosen configuration", ""]
    if best:
        out += [f"`{best.label}` on `{best.backend}`, options `{json.dumps(best.options)}`, passes "
                f"{', '.join(p_['name'] for p_ in best.passes) or 'none'}; artifact `{best.artifact}`.", ""]
    else:
        out += ["No candidate kept the accuracy.", ""]
    opt = tests.optimization
    out += [f"### Optimisation candidates ({len(opt.candidates)}, stopped: {opt.stopped})", ""]
    out += _md_table(["candidate", "options", "p50 ms", "speedup", "accuracy", "accepted", "pareto", "reason"],
                     [[c.label, json.dumps(c.options), c.latency_ms_p50, c.speedup, c.accuracy["value"],
                       c.accepted, c.pareto, c.reason] for c in opt.candidates])
    out += [f"- {n}" for n in opt.notes] + ([""] if opt.notes else [])
    env = tests.environment
    out += ["### Environment manifest", "",
            f"Python {env['python']} on {env['platform']}, CPU {env['cpu']} ({env['cpu_count']} cores; flags "
            f"{', '.join(env['cpu_flags'])}), seed {env['seed']}.", ""]
    out += _md_table(["package", "version"], [[k, v] for k, v in env["packages"].items()])
    out += _md_table(["input", "sha256"], [[k, v] for k, v in env["input_hashes"].items()])
    return "\n".join(out)


# -- HTML --------------------------------------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f"<th class='{'l' if i < left else ''}'>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{c}</td>" for i, c in enumerate(row))
                   + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def bar_chart(title: str, groups: list[str], series: dict[str, list[float | None]], unit: str,
              width: int = 480, height: int = 240) -> str:
    """Grouped bars (one group per batch size, one bar per series) as inline SVG."""
    colors = ["#8c959f", "#0969da", "#1a7f37", "#9a6700"]
    left, bottom, top = 50, 36, 28
    plot_w, plot_h = width - left - 10, height - top - bottom
    values = [v for vs in series.values() for v in vs if v]
    peak = max(values) if values else 1.0
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{_e(title)}"><text x="{left}" y="16" font-weight="600">{_e(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#57606a"/>']
    group_w = plot_w / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(series))
    for gi, group in enumerate(groups):
        gx = left + gi * group_w + group_w * 0.1
        for si, (name, vals) in enumerate(series.items()):
            value = vals[gi] if gi < len(vals) else None
            if not value:
                continue
            bh = plot_h * value / peak
            x, y = gx + si * bar_w, top + plot_h - bh
            svg.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{bh:.1f}" '
                       f'fill="{colors[si % len(colors)]}"><title>{_e(name)} batch {_e(group)}: {value:.4g} {_e(unit)}'
                       f'</title></rect>')
            svg.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" text-anchor="middle">{value:.3g}</text>')
        svg.append(f'<text x="{gx + group_w * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
                   f'batch {_e(group)}</text>')
    legend = "  ".join(f'<tspan fill="{colors[i % len(colors)]}">■ {_e(n)}</tspan>' for i, n in enumerate(series))
    svg.append(f'<text x="{left}" y="{height - 4}">{legend} ({_e(unit)})</text></svg>')
    return "\n".join(svg)


def pareto_chart(candidates: tuple[CandidateRow, ...], width: int = 640, height: int = 300) -> str:
    """Latency (x, log) against accuracy drop (y) of every candidate; the Pareto front joined by a line."""
    import math

    points = [(c.latency_ms_p50, c.accuracy["drop"], c) for c in candidates
              if c.latency_ms_p50 and c.accuracy["drop"] is not None]
    left, right, top, bottom = 60, 20, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="speed vs accuracy">',
           f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f6f8fa" stroke="#d0d7de"/>']
    if points:
        lo = math.log10(min(p[0] for p in points))
        hi = max(lo + 0.1, math.log10(max(p[0] for p in points)))
        worst = max(max(p[1] for p in points), 1e-6)

        def xy(lat: float, drop: float) -> tuple[float, float]:
            x = left + plot_w * (math.log10(lat) - lo) / (hi - lo)
            return x, top + plot_h * (max(drop, 0.0) / worst)

        front = sorted((p for p in points if p[2].pareto), key=lambda p: p[0])
        if len(front) > 1:
            svg.append('<polyline points="' + " ".join("%.1f,%.1f" % xy(p[0], p[1]) for p in front)
                       + '" fill="none" stroke="#8250df" stroke-dasharray="4,3"/>')
        for lat, drop, c in points:
            x, y = xy(lat, drop)
            color = _COLORS["pass"] if c.accepted else _COLORS["fail"]
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{5 if c.pareto else 3.5}" fill="{color}" '
                       f'fill-opacity="0.8"><title>{_e(c.label)} {_e(json.dumps(c.options))}: {lat:.3f} ms, '
                       f'drop {drop:.3%}</title></circle>')
        svg.append(f'<text x="{left}" y="{top + plot_h + 14}">{10 ** lo:.3g} ms</text>')
        svg.append(f'<text x="{left + plot_w}" y="{top + plot_h + 14}" text-anchor="end">{10 ** hi:.3g} ms</text>')
        svg.append(f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">0</text>')
        svg.append(f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">{worst:.2%}</text>')
    svg.append(f'<text x="{left}" y="{height - 6}">latency p50 (log) → ; accuracy drop ↓ ; '
               f'<tspan fill="{_COLORS["pass"]}">● accepted</tspan> <tspan fill="{_COLORS["fail"]}">● rejected</tspan>'
               f' <tspan fill="#8250df">┅ Pareto front</tspan></text></svg>')
    return "\n".join(svg)


def render_html(doc: MigrationReport) -> str:
    h = doc.headline
    mig, tests = doc.migration_report, doc.test_report
    color = _COLORS["pass"] if doc.accepted else _COLORS["fail"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>Modelyard migration report: {_e(doc.name)}</title>",
             f"<style>{_CSS}{_EXTRA_CSS}</style></head><body>",
             f'<div class="card" style="background:{color}"><h1>{"ACCEPTED" if doc.accepted else "NOT ACCEPTED"}'
             f' — {_e(doc.name)}</h1>',
             f"<p>readiness <b>{_e(h.readiness_score)}/100</b> · precision verdict <b>{_e(h.verdict)}</b> · "
             f"speedup <b>{_e(h.speedup)}x</b> at {_e(h.accuracy)}</p>",
             f"<p>{_e(h.chosen or 'no accepted configuration')} · target {_e(doc.target)} · reference "
             f"{_e(doc.reference)} · {_e(doc.generated_at)}</p></div>"]
    for note in doc.notes:
        parts.append(f"<p class='muted'>note: {_e(note)}</p>")
    parts.append("<h2>Acceptance checklist</h2>")
    parts.append(_table(["goal", "target", "measured", "result", "note"], [
        [_e(r.goal), _e(r.target), _fmt(r.measured),
         f"<span class='{'ok' if r.passed else ('bad' if r.passed is False else 'na')}'>"
         f"{_mark(r.passed)}</span>",
         _e(r.note)] for r in doc.acceptance]))

    parts.append("<h2>1. Migration report</h2>")
    ready = mig.readiness
    if ready.before:
        rows = [["before rewrite", ready.before]] + ([["after rewrite", ready.after]] if ready.after else [])
        parts.append(_table(["code", "readiness", "findings", "auto", "manual", "unsupported", "effort h"], [
            [_e(label), _e(s["readiness_score"]), _e(s["findings"]), _e(s["auto"]), _e(s["manual"]),
             _e(s["unsupported"]), f"{s['effort_hours']['low']}–{s['effort_hours']['high']}"] for label, s in rows]))
    else:
        parts.append(f"<p class='muted'>code analysis skipped: {_e(ready.skipped)}</p>")
    parts.append(f"<h3>Change list ({len(mig.changes)})</h3>")
    parts.append(_table(["file", "line", "rule", "before", "after"], [
        [_e(c["file"]), _e(c["line"]), _e(c["rule"]), f"<code>{_e(c['before'])}</code>",
         f"<code>{_e(c['after'])}</code>"]
        for c in mig.changes[:500]], left=5))
    parts.append(f"<h3>Manual items left ({len(mig.manual_items)}, {mig.manual_effort_hours['low']}–"
                 f"{mig.manual_effort_hours['high']} h)</h3>")
    parts.append(_table(["file", "line", "rule", "status", "effort h", "owner", "what to do"], [
        [_e(m["file"]), _e(m["line"]), _e(m["rule"]), _e(m["status"]),
         _e("–".join(str(x) for x in m["effort"]["hours"])), _e(m["owner"]), _e(m["suggestion"] or m["message"])]
        for m in mig.manual_items[:500]], left=7))
    cov = mig.coverage
    parts.append("<h3>Operator coverage</h3>")
    if cov.coverage is not None:
        parts.append(f"<p>{cov.coverage:.1%} of {cov.total_nodes} nodes run natively on {_e(cov.target)}.</p>")
        if cov.fallback:
            parts.append(_table(["op", "count", "status", "runs on"], [
                [_e(f["op"]), _e(f["count"]), _e(f["status"]), _e(f["runs_on"])] for f in cov.fallback]))
    else:
        parts.append(f"<p class='muted'>skipped: {_e(cov.skipped)}</p>")

    parts.append("<h2>2. Test report</h2>")
    p = tests.precision
    parts.append(f"<h3>Precision: {_e(p.target)} vs {_e(p.reference)}, {_e(p.samples)} samples — "
                 f"<span style='color:{_COLORS.get(p.verdict, '#57606a')}'>{_e(p.verdict)}</span></h3>")
    parts.append(_table(["output", "max abs err", "cosine", "SQNR dB", "× noise floor", "verdict"], [
        [_e(o["name"]), _fmt(o["max_abs_err"]), _fmt(o["cosine"], 6), _fmt(o["sqnr_db"], 1),
         _fmt(o.get("noise_floor_ratio"), 2), _e(o["verdict"])] for o in p.outputs]))
    if p.layers:
        fd = p.first_divergence
        parts.append(f"<p>{len(p.layers)} layers compared; " + (
            f"first divergence #{fd['index']} <b>{_e(fd['name'])}</b> ({_e(fd['kind'])})." if fd else "no divergence.")
            + "</p>")
        parts.append(plot_svg(p.layers, fd["index"] if fd else None, width=1000, height=280))
    tm = tests.task_metrics
    parts.append("<h3>Task metrics</h3>")
    parts.append(_table(["model", "metric", "value"], [
        ["fp32 conversion", "top-1 agreement", _fmt((tm.fp32 or {}).get("top1_agreement"))],
        ["chosen configuration", _e((tm.chosen or {}).get("metric")), _fmt((tm.chosen or {}).get("value"))]]))
    perf = tests.performance
    base, chosen = perf.baseline.by_batch(), perf.chosen.by_batch()
    sizes = perf.batch_sizes
    parts.append("<h3>Performance before / after</h3><div class='grid'>")
    labels = {f"before ({perf.baseline.backend})": base, f"after ({perf.chosen.backend})": chosen}
    parts.append(bar_chart("latency p50 per batch size", [str(s) for s in sizes],
                           {k: [(v.get(s) or {}).get("latency_ms", {}).get("p50") for s in sizes]
                            for k, v in labels.items()},
                           "ms"))
    parts.append(bar_chart("throughput per batch size", [str(s) for s in sizes],
                           {k: [(v.get(s) or {}).get("throughput") for s in sizes] for k, v in labels.items()},
                           "samples/s"))
    parts.append("</div>")
    if perf.error:
        parts.append(f"<p class='muted'>chosen configuration benchmark: {_e(perf.error)}</p>")
    best = tests.chosen_configuration
    parts.append("<h3>Chosen configuration</h3>")
    if best:
        parts.append(_table(["backend", "passes", "options", "p50 ms", "speedup", "accuracy", "artifact"], [[
            _e(best.backend), _e(", ".join(x["name"] for x in best.passes) or "none"),
            _e(json.dumps(best.options)),
            _fmt(best.latency_ms_p50), _fmt(best.speedup, 2),
            f"{_e(best.accuracy['metric'])} {_fmt(best.accuracy['value'])}", _e(best.artifact)]], left=3))
    else:
        parts.append("<p>No candidate kept the accuracy.</p>")
    hot = tests.hot_spots
    if hot:
        parts.append(f"<h3>Hot spots of the chosen configuration ({_e(hot.method)})</h3>")
        parts.append(_table(["operator", "count", "ms per run", "share"], [
            [_e(r["op_type"]), _e(r["count"]), _fmt(r["total_ms"]), f"{r['share']:.1%}"] for r in hot.by_op_type]))
    opt = tests.optimization
    parts.append(f"<h3>Optimisation: {len(opt.candidates)} candidates, stopped: {_e(opt.stopped)}</h3>")
    parts.append(pareto_chart(opt.candidates))
    parts.append(_table(["candidate", "options", "p50 ms", "speedup", "accuracy", "accepted", "pareto", "reason"], [
        [_e(c.label), _e(json.dumps(c.options)), _fmt(c.latency_ms_p50), _fmt(c.speedup, 2),
         _fmt(c.accuracy["value"]), _fmt(c.accepted), _fmt(c.pareto), _e(c.reason)]
        for c in opt.candidates], left=2))
    for note in opt.notes:
        parts.append(f"<p class='muted'>{_e(note)}</p>")
    for skip in opt.skipped:
        parts.append(f"<p class='muted'>skipped {_e(skip.get('backend'))} {_e(skip.get('precision', ''))}: "
                     f"{_e(skip['reason'])}</p>")
    env = tests.environment
    parts.append("<h3>Environment manifest</h3>")
    parts.append(_table(["item", "value"], [[_e(k), _e(v)] for k, v in (
        [("python", env["python"]), ("platform", env["platform"]), ("cpu", env["cpu"]), ("cores", env["cpu_count"]),
         ("cpu flags", ", ".join(env["cpu_flags"])), ("seed", env["seed"])]
        + [(f"package {k}", v) for k, v in env["packages"].items()]
        + [(f"sha256 {k}", v) for k, v in env["input_hashes"].items()])], left=2))
    parts.append("<details><summary>JSON</summary><pre>")
    parts.append(html.escape(json.dumps(doc.to_dict(), indent=1, default=str)))
    parts.append("</pre></details></body></html>")
    return "\n".join(parts)
