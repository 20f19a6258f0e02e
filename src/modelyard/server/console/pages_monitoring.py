"""Monitoring: the services with their capture state (``/monitoring``), and per service (``/services/{name}/
monitoring``) charts over windows of feature drift (effect size per feature), accuracy from feedback beside the
CBPE estimate, latency and errors, data-quality shares; the latest window's tests ranked by estimated impact, its
quality issues, the alerts and rules; editors turn capture on and off. REST twins: ``GET /api/v1/services/{name}/
monitoring``, ``.../monitoring/report``, ``.../monitoring/alerts``, ``.../monitoring/rules``, ``PUT .../monitoring``;
the page calls the same functions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request

from modelyard.core.errors import ModelyardError
from modelyard.server.console import web
from modelyard.server.console.charts import line_chart
from modelyard.server.console.web import Viewer, action, page, redirect, render

router = APIRouter()
web.nav_item("monitoring", "/monitoring", "Monitoring", before="admin")
MAX_CHARTED_FEATURES = 8


@router.get("/monitoring")
def monitoring_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.deploy.services import ServiceStore
    from modelyard.server.routes_monitoring import monitor_status

    workspace = request.app.state.workspace
    rows = [{"name": s.name, "state": s.state, **monitor_status(workspace, s.name)}
            for s in ServiceStore(workspace).list()]
    return render(request, "monitoring.html", viewer, title="Monitoring", nav="monitoring", services=rows)


def _charts(report: dict) -> list[dict]:
    windows = report["windows"]
    if not windows:
        return []
    size = {"width": 600, "height": 240}
    xs = list(range(1, len(windows) + 1))
    features: dict[str, list] = {}
    for x, window in zip(xs, windows, strict=True):
        for test in window["features"] + window["predictions"] + window["embeddings"]:
            if test["effect"] is not None:
                features.setdefault(test["feature"], []).append([x, test["effect"]])
    latest = windows[-1]["features"] + windows[-1]["predictions"] + windows[-1]["embeddings"]
    charted = [t["feature"] for t in latest if t["feature"] in features][:MAX_CHARTED_FEATURES]
    note = f"x: window (of {report['window']}), drift needs significance and an effect >= " \
           f"{report['settings']['min_effect']:g}"
    drift = line_chart([(name, features[name]) for name in charted], "Drift effect size per feature", note=note,
                       **size)

    def series(label, pick):
        return (label, [[x, pick(w)] for x, w in zip(xs, windows, strict=True) if pick(w) is not None])

    accuracy = line_chart([series("accuracy (labels)", lambda w: w["performance"].get("accuracy")),
                           series("estimated (CBPE)", lambda w: w["performance"].get("estimated_accuracy")),
                           series("labelled share", lambda w: w["performance"].get("coverage"))],
                          "Accuracy: real and estimated", note="x: window", **size)
    latency = line_chart([series("p50 ms", lambda w: w["latency_p50_ms"]),
                          series("p95 ms", lambda w: w["latency_p95_ms"])], "Latency", note="x: window", **size)
    quality = line_chart([series("missing", lambda w: w["missing_share"]),
                          series("out of range", lambda w: w["out_of_range_share"]),
                          series("unseen categories", lambda w: w["unseen_share"]),
                          series("errors", lambda w: w["error_rate"])], "Data quality and errors (share of rows)",
                         note="x: window; the worst feature per window", **size)
    return [drift, accuracy, latency, quality]


@router.get("/services/{name}/monitoring")
def service_monitoring_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    from modelyard.deploy.monitoring.reports import build_report
    from modelyard.deploy.monitoring.store import MonitorStore
    from modelyard.deploy.services import ServiceStore
    from modelyard.server.routes_monitoring import monitor_status

    workspace = request.app.state.workspace
    ServiceStore(workspace).get(name)
    status = monitor_status(workspace, name)
    try:
        report, problem = build_report(workspace, name), None
    except ModelyardError as exc:  # no reference yet (no lineage): the page still shows settings and alerts
        report, problem = None, exc.message
    store = MonitorStore(workspace.engine)
    return render(request, "monitoring_service.html", viewer, title=f"Monitoring {name}", nav="monitoring",
                  name=name, status=status, report=report, problem=problem,
                  charts=_charts(report) if report else [], alerts=store.alerts(name, 50), rules=store.rules(name))


@router.post("/services/{name}/monitoring")
def set_capture(request: Request, name: str, enabled: str = Form(...), viewer: Viewer = Depends(action())):
    from modelyard.deploy.monitoring.store import MonitorStore
    from modelyard.deploy.services import ServiceStore

    ServiceStore(request.app.state.workspace).get(name)
    on = enabled == "true"
    MonitorStore(request.app.state.workspace.engine).set_settings(name, {"enabled": on}, updated_by=viewer.name)
    return redirect(f"/services/{name}/monitoring", f"Capture {'on' if on else 'off'}.")
