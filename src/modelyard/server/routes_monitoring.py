"""Model monitoring of services: capture settings, reports (drift, data quality, performance), feedback labels,
alert rules and alerts. Pages: ``/services/{name}/monitoring`` in the console."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.deploy.monitoring.store import RuleSpec
from modelyard.server.auth import Principal, require
from modelyard.server.responses import documented
from modelyard.server.responses_monitoring import (
    FeedbackAccepted,
    MonitorAlertList,
    MonitorCheck,
    MonitorReport,
    MonitorRule,
    MonitorRuleDeleted,
    MonitorRuleList,
    MonitorStatus,
)

router = APIRouter(tags=["monitoring"])


class SettingsUpdate(BaseModel):
    """The fields to change (see ``MonitorSettings``); the others keep their values."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    sample_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    max_record_bytes: int | None = Field(default=None, ge=64, le=16 * 1024 * 1024)
    retention_days: float | None = Field(default=None, gt=0, le=3650)
    reference: str | None = Field(default=None, min_length=1, max_length=300)
    window: int | str | None = Field(default=None, description="rows per window, or a duration such as 1h")
    min_rows: int | None = Field(default=None, ge=10, le=1_000_000)
    alpha: float | None = Field(default=None, gt=0, lt=0.5)
    min_effect: float | None = Field(default=None, gt=0, le=1.0)
    queue_size: int | None = Field(default=None, ge=1, le=1_000_000)
    flush_s: float | None = Field(default=None, ge=0.05, le=3600)


class Feedback(BaseModel):
    """One label (``request_id``, ``label``, ``row``) or ``items``: a list of them."""

    model_config = ConfigDict(extra="forbid")
    request_id: str | None = Field(default=None, max_length=100)
    label: str | int | float | None = None
    row: int | None = Field(default=None, ge=0, le=1_000_000)
    items: list[dict] | None = Field(default=None, max_length=10_000)


def _workspace(request: Request):
    return request.app.state.workspace


def _service(request: Request, name: str):
    from modelyard.deploy.services import ServiceStore

    return ServiceStore(_workspace(request)).get(name)


def monitor_status(workspace, name: str) -> dict:
    """The service's settings, capture counters, stored rows, rules and firing alerts."""
    from modelyard.deploy.monitoring.capture import capture_stats
    from modelyard.deploy.monitoring.store import MonitorStore
    from modelyard.deploy.state import service_dir

    store = MonitorStore(workspace.engine)
    totals = store.totals(name)
    traffic, feedback = totals.get("traffic", (0, 0)), totals.get("feedback", (0, 0))
    return {"schema": "modelyard.monitor-status/1", "service": name,
            "settings": store.settings(name).model_dump(),
            "capture": capture_stats(service_dir(workspace.home, name)),
            "segments": traffic[0] + feedback[0], "captured_rows": traffic[1], "feedback_rows": feedback[1],
            "rules": len(store.rules(name)),
            "firing": len(store.alerts(name, limit=1000, state="firing"))}


@router.get("/services/{name}/monitoring", responses=documented(MonitorStatus, 404))
def status(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    """Monitoring settings, capture counters (captured, dropped because the queue was full, ...), stored rows."""
    _service(request, name)
    return monitor_status(_workspace(request), name)


@router.put("/services/{name}/monitoring", responses=documented(MonitorStatus, 404, 413, 422))
def update(name: str, body: SettingsUpdate, request: Request, principal: Principal = Depends(require("editor"))):
    """Change capture and judging settings; running replicas pick them up within seconds."""
    from modelyard.deploy.monitoring.store import MonitorStore

    _service(request, name)
    changes = body.model_dump(exclude_none=True)
    MonitorStore(_workspace(request).engine).set_settings(name, changes, updated_by=principal.name)
    return monitor_status(_workspace(request), name)


@router.get("/services/{name}/monitoring/report", responses=documented(MonitorReport, 404, 422))
def report(name: str, request: Request,
           window: str | None = Query(None, max_length=20, description="rows per window or a duration (1h)"),
           windows: int = Query(12, ge=1, le=100), _: Principal = Depends(require("viewer"))):
    """Drift per feature (ranked by estimated impact), prediction and embedding drift, data quality, performance
    (from feedback, and estimated by CBPE), latency and errors, per window."""
    from modelyard.deploy.monitoring.reports import build_report
    from modelyard.deploy.monitoring.store import check_window

    _service(request, name)
    chosen = check_window(window) if window is not None else None
    return build_report(_workspace(request), name, window=chosen, windows=windows)


@router.post("/services/{name}/feedback", status_code=202,
             responses=documented(FeedbackAccepted, 404, 413, 422, status=202))
def feedback(name: str, body: Feedback, request: Request, principal: Principal = Depends(require("viewer"))):
    """True labels for captured predictions, by the ``x-modelyard-request-id`` a prediction answered with; they
    may come any time later (metrics fill in as they arrive)."""
    from modelyard.deploy.monitoring.capture import feedback_chunk, parse_feedback, write_segment
    from modelyard.deploy.monitoring.store import MonitorStore

    _service(request, name)
    items = parse_feedback(body.model_dump(exclude_none=True))
    workspace = _workspace(request)
    write_segment(MonitorStore(workspace.engine), workspace.blobs, name, "feedback", [feedback_chunk(items)],
                  f"api:{principal.name}")
    return {"schema": "modelyard.feedback/1", "accepted": len(items)}


@router.get("/services/{name}/monitoring/rules", responses=documented(MonitorRuleList, 404))
def rules(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    from modelyard.deploy.monitoring.store import MonitorStore

    _service(request, name)
    return {"schema": "modelyard.monitor-rule-list/1",
            "items": MonitorStore(_workspace(request).engine).rules(name)}


@router.post("/services/{name}/monitoring/rules", status_code=201,
             responses=documented(MonitorRule, 404, 413, 422, status=201))
def add_rule(name: str, body: RuleSpec, request: Request, principal: Principal = Depends(require("editor"))):
    """An alert rule on a monitored metric over a window, delivered to a webhook and the console."""
    from modelyard.deploy.monitoring.store import MonitorStore

    _service(request, name)
    return MonitorStore(_workspace(request).engine).add_rule(name, body, created_by=principal.name)


@router.delete("/services/{name}/monitoring/rules/{rule_id}", responses=documented(MonitorRuleDeleted, 404))
def delete_rule(name: str, rule_id: str, request: Request, _: Principal = Depends(require("editor"))):
    from modelyard.deploy.monitoring.store import MonitorStore

    MonitorStore(_workspace(request).engine).delete_rule(name, rule_id)
    return {"schema": "modelyard.monitor-rule-deleted/1", "id": rule_id}


@router.get("/services/{name}/monitoring/alerts", responses=documented(MonitorAlertList, 404, 422))
def alerts(name: str, request: Request, state: str | None = Query(None, pattern="^(firing|resolved)$"),
           limit: int = Query(100, ge=1, le=1000), _: Principal = Depends(require("viewer"))):
    from modelyard.deploy.monitoring.store import MonitorStore

    _service(request, name)
    return {"schema": "modelyard.monitor-alert-list/1",
            "items": MonitorStore(_workspace(request).engine).alerts(name, limit, state)}


@router.post("/services/{name}/monitoring/check", responses=documented(MonitorCheck, 404, 422))
def check(name: str, request: Request, _: Principal = Depends(require("editor"))):
    """Evaluate the service's alert rules on its latest window now (the supervisor also does, every minute)."""
    from modelyard.deploy.monitoring.alerts import evaluate_rules

    _service(request, name)
    return evaluate_rules(_workspace(request), name)
