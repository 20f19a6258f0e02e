"""Alert rules on stored windows (no replica: segments written directly, the reference a window of the service's
own traffic): a drifted feature fires one alert naming it and its effect size, ranked by impact; it is posted once,
counted while it keeps firing, resolved when it stops; a window too small to judge changes nothing; rules on plain
metrics compare the latest window's value."""

import time

import numpy as np
import pytest

from modelyard.deploy.monitoring.alerts import conditions, evaluate_rules
from modelyard.deploy.monitoring.capture import write_segment
from modelyard.deploy.monitoring.reports import build_report
from modelyard.deploy.monitoring.store import MonitorStore, RuleSpec
from support import matmul_onnx


@pytest.fixture
def service(sqlite_workspace, tmp_path):
    from modelyard.deploy.services import DeploySpec, ServiceStore
    from modelyard.registry.versions import ModelRegistry

    digest = "sha256:" + sqlite_workspace.blobs.put_file(matmul_onnx(tmp_path / "mm.onnx")).digest
    ModelRegistry(sqlite_workspace).create_version("mm", {"model.onnx": digest}, "model.onnx", "onnx")
    ServiceStore(sqlite_workspace).deploy(DeploySpec(model="mm@1", name="svc"))  # a row; nothing is started
    store = MonitorStore(sqlite_workspace.engine)
    store.set_settings("svc", {"enabled": True, "reference": f"window:{T0}..{T0 + 999}", "window": 200})
    return store


T0 = int(time.time()) - 10_000  # recent: older segments would fall out of the 30-day retention


def _traffic(workspace, start, rows, rng, shift=0.0, latency_ms=5.0):
    start_ts = T0 + start
    a = rng.normal(shift, 1.0, rows)
    b = rng.normal(0.0, 1.0, rows)
    chunk = {"ts": (start_ts + np.arange(rows) * 0.5).tolist(), "request_id": [f"r{start_ts}-{i}" for i in
                                                                               range(rows)],
             "row": [0] * rows, "model": ["mm@1"] * rows, "latency_ms": [latency_ms] * rows,
             "status": [200] * rows, "f.a": a.tolist(), "f.b": b.tolist(), "p.value": (2 * a + 0.1 * b).tolist()}
    write_segment(MonitorStore(workspace.engine), workspace.blobs, "svc", "traffic", [chunk])


def test_a_drifted_feature_fires_once_is_counted_then_resolved(sqlite_workspace, service):
    rng = np.random.default_rng(0)
    _traffic(sqlite_workspace, 0, 1000, rng)  # the reference window
    _traffic(sqlite_workspace, 2000, 200, rng, shift=1.0)
    service.add_rule("svc", RuleSpec(metric="drift", webhook="http://127.0.0.1:9/hook", cooldown_s=3600))
    sent = []

    def post(url, payload):
        sent.append(payload)
        return 204

    first = evaluate_rules(sqlite_workspace, "svc", post=post, now=10_000.0)
    assert [a["feature"] for a in first["fired"]] == ["f.a"]
    alert = first["fired"][0]
    assert alert["effect_name"] == "normed_wasserstein" and alert["effect"] > 0.5 and alert["rank"] == 1
    assert "f.a" in alert["message"] and len(sent) == 1 and sent[0]["alerts"][0]["feature"] == "f.a"
    # the prediction follows f.a, so f.a ranks first and carries the impact
    latest = build_report(sqlite_workspace, "svc", windows=1)["latest"]
    assert latest["features"][0]["feature"] == "f.a" and latest["features"][0]["importance"] > 0.9
    again = evaluate_rules(sqlite_workspace, "svc", post=post, now=10_030.0)
    assert again["fired"] == [] and len(again["firing"]) == 1 and len(sent) == 1
    stored = service.alerts("svc")[0]
    assert stored["count"] == 2 and stored["delivery"]["status"] == 204 and stored["state"] == "firing"
    assert conditions(RuleSpec(metric="drift"), {**latest, "sufficient": False}) is None  # too few rows: no change
    _traffic(sqlite_workspace, 4000, 400, rng)  # back to normal
    resolved = evaluate_rules(sqlite_workspace, "svc", post=post, now=10_200.0)
    assert resolved["resolved"] == [stored["id"]] and service.alerts("svc", state="firing") == []
    assert "alert: svc: drift in f.a" in (sqlite_workspace.home / "services" / "svc" / "events.log").read_text()


def test_metric_rules_compare_the_latest_window_and_webhooks_are_rate_limited(sqlite_workspace, service):
    rng = np.random.default_rng(1)
    _traffic(sqlite_workspace, 0, 1000, rng)
    _traffic(sqlite_workspace, 2000, 200, rng, latency_ms=80.0)
    service.add_rule("svc", RuleSpec(metric="latency_p95_ms", threshold=50.0, webhook="http://127.0.0.1:9/x"))
    service.add_rule("svc", RuleSpec(metric="error_rate", threshold=0.5))
    sent = []
    result = evaluate_rules(sqlite_workspace, "svc", post=lambda url, payload: sent.append(payload) or 200,
                            now=5000.0)
    assert [a["metric"] for a in result["fired"]] == ["latency_p95_ms"] and result["fired"][0]["value"] == 80.0
    service.resolve_alert(service.alerts("svc")[0]["id"])
    again = evaluate_rules(sqlite_workspace, "svc", post=lambda url, payload: sent.append(payload) or 200,
                           now=5010.0)
    assert again["fired"] and again["webhooks"] == [{"webhook": "http://127.0.0.1:9/x", "rate_limited": True}]
    assert len(sent) == 1


def test_rule_and_settings_validation_names_the_field():
    with pytest.raises(Exception, match="webhook"):
        RuleSpec(metric="drift", webhook="ftp://x")
    with pytest.raises(Exception, match="window"):
        RuleSpec(metric="drift", window="5")
    with pytest.raises(Exception, match="metric"):
        RuleSpec(metric="vibes")


def test_the_supervisors_checker_fires_and_an_unreachable_webhook_is_recorded(sqlite_workspace, service):
    from modelyard.deploy.monitoring.alerts import RuleChecker

    rng = np.random.default_rng(3)
    _traffic(sqlite_workspace, 0, 1000, rng)
    _traffic(sqlite_workspace, 2000, 200, rng, shift=2.0)
    service.add_rule("svc", RuleSpec(metric="drift", webhook="http://127.0.0.1:9/closed"))  # nothing listens
    RuleChecker(sqlite_workspace).check_once()
    alerts = service.alerts("svc", state="firing")
    assert [a["feature"] for a in alerts] == ["f.a"]
    assert alerts[0]["delivery"]["status"] is None and alerts[0]["delivery"]["error"].startswith("ConnectError")
    from modelyard.deploy.services import ServiceStore

    ServiceStore(sqlite_workspace).delete("svc")  # its monitoring goes with it
    assert service.rules("svc") == [] and service.alerts("svc") == [] and service.segments("svc", "traffic") == []
    assert service.settings("svc").enabled is False
