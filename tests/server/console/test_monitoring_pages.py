"""Monitoring pages (no replica: captured segments written directly): the list, a service's charts of drift,
accuracy, latency and quality over windows, the latest window ranked by impact, alerts; editors toggle capture,
viewers cannot."""

from __future__ import annotations

import time

import numpy as np
import pytest
from console_support import csrf_of, register_linear


@pytest.fixture
def monitored(sqlite_workspace, tmp_path):
    from modelyard.deploy.monitoring.capture import write_segment
    from modelyard.deploy.monitoring.store import MonitorStore, RuleSpec
    from modelyard.deploy.services import DeploySpec, ServiceStore

    register_linear(sqlite_workspace, tmp_path, "mm")
    ServiceStore(sqlite_workspace).deploy(DeploySpec(model="mm@1", name="svc"))
    store = MonitorStore(sqlite_workspace.engine)
    t0 = int(time.time()) - 5000
    store.set_settings("svc", {"enabled": True, "reference": f"window:{t0}..{t0 + 999}", "window": 200})
    rng = np.random.default_rng(0)
    for start, rows, shift in [(0, 1000, 0.0), (2000, 400, 0.0), (3000, 200, 1.5)]:
        a = rng.normal(shift, 1.0, rows)
        write_segment(store, sqlite_workspace.blobs, "svc", "traffic", [{
            "ts": (t0 + start + np.arange(rows) * 0.5).tolist(), "request_id": [f"{start}-{i}" for i in range(rows)],
            "row": [0] * rows, "model": ["mm@1"] * rows, "latency_ms": [4.0] * rows, "status": [200] * rows,
            "f.a": a.tolist(), "p.class": np.where(a > 0, "yes", "no").tolist(),
            "p.score": (0.5 + np.abs(np.tanh(a)) / 2).tolist()}])
    store.add_rule("svc", RuleSpec(metric="drift"))
    return store


def test_monitoring_pages_show_charts_the_ranked_window_alerts_and_let_editors_toggle_capture(as_role, monitored,
                                                                                              sqlite_workspace):
    from modelyard.deploy.monitoring.alerts import evaluate_rules

    evaluate_rules(sqlite_workspace, "svc")
    viewer = as_role("viewer")
    listing = viewer.get("/monitoring")
    assert listing.status_code == 200 and 'href="/services/svc/monitoring"' in listing.text
    page = viewer.get("/services/svc/monitoring")
    assert page.status_code == 200 and page.text.count("<svg") == 4
    assert "Drift effect size per feature" in page.text and "Accuracy: real and estimated" in page.text
    table = page.text.split('id="drift-table"')[1].split("</table>")[0]
    assert table.index("f.a") < table.index("p.class") and "drift</b>" in table
    assert "drift in f.a" in page.text.split('id="alerts"')[1]
    assert "Turn capture off" not in page.text  # viewers see no toggle
    assert viewer.post("/services/svc/monitoring", data={"enabled": "false", "csrf": csrf_of(page.text)}
                       ).status_code == 403
    editor = as_role("editor")
    page = editor.get("/services/svc/monitoring")
    answer = editor.post("/services/svc/monitoring", data={"enabled": "false", "csrf": csrf_of(page.text)},
                         follow_redirects=True)
    assert answer.status_code == 200 and "Capture off." in answer.text and monitored.settings("svc").enabled is False
    assert "capture <b>off</b>" in answer.text
