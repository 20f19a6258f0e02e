"""Alert rules over a service's latest window: fire, deduplicate, rate-limit, deliver (webhook + console).

A rule (:class:`~modelyard.deploy.monitoring.store.RuleSpec`) holds on the latest window of its size when
``metric op threshold``; for the drift metrics the test's own verdict (significance and effect size) must hold
too, and each drifted feature is its own alert (deduplication key ``rule:feature``), named with its effect size
and ranked by estimated impact (effect size x how strongly the model's output follows the feature). While an
alert keeps holding it is not raised again, only counted; once it stops holding it is resolved. Delivery: every
new alert goes to the service's events log (the console shows it) and, when the rule has a webhook, one JSON POST
per evaluation carries the rule's new alerts ranked by impact; a rule posts at most once per ``MIN_POST_GAP_S``
(a flapping feature cannot flood the receiver; what was held back goes with the next post), and re-sends alerts
that keep firing only after its ``cooldown_s``.
"""

from __future__ import annotations

import logging
import time

from modelyard.deploy.monitoring.store import MonitorStore, RuleSpec

log = logging.getLogger("modelyard.monitoring")
MIN_POST_GAP_S = 60.0
WEBHOOK_TIMEOUT_S = 5.0
PAYLOAD_SCHEMA = "modelyard.monitor-alerts/1"


def _holds(value: float | None, op: str, threshold: float) -> bool:
    if value is None:
        return False
    return value > threshold if op == ">" else value < threshold


def conditions(rule: RuleSpec, window: dict) -> list[dict] | None:
    """The alerts ``rule`` raises on ``window`` (each ``{"key", "metric", "feature", "value", "effect", ...}``),
    or None when the window cannot be judged (too few rows): nothing fires and nothing resolves then."""
    if window is None or not window["sufficient"]:
        return None
    metric = rule.metric
    if metric in ("drift", "prediction_drift", "embedding_drift"):
        tests = {"drift": window["features"], "prediction_drift": window["predictions"],
                 "embedding_drift": window["embeddings"]}[metric]
        found = []
        for test in tests:
            if test["drifted"] and _holds(test["effect"], rule.op, rule.threshold):
                found.append({"key": f"{metric}:{test['feature']}", "metric": metric, "feature": test["feature"],
                              "value": test["effect"], "effect": test["effect"], "effect_name": test["effect_name"],
                              "p_value": test["p_value"], "psi": test["psi"],
                              "impact": test.get("impact", test["effect"]), "rows": test["rows"]})
        return found
    feature = None
    if metric in ("estimated_accuracy", "accuracy"):
        value = window["performance"].get(metric)
    elif metric in ("missing_share", "out_of_range_share", "unseen_share"):
        shares = [(c[metric], c["feature"]) for c in window["quality"] if c.get(metric) is not None]
        value, feature = max(shares) if shares else (None, None)
    else:
        value = window.get(metric)
    if not _holds(value, rule.op, rule.threshold):
        return []
    impact = abs(value - rule.threshold) if value is not None else 0.0
    return [{"key": metric + (f":{feature}" if feature else ""), "metric": metric, "feature": feature,
             "value": value, "effect": None, "impact": impact, "rows": window["rows"]}]


def _message(service: str, rule: dict, found: dict) -> str:
    if found["effect"] is not None:
        return (f"{service}: {found['metric'].replace('_', ' ')} in {found['feature']} "
                f"({found['effect_name'].replace('_', ' ')} {found['effect']:.3f}, p={found['p_value']:.2g}, "
                f"{found['rows']} rows)")
    where = f" ({found['feature']})" if found["feature"] else ""
    return (f"{service}: {found['metric']}{where} = {found['value']:.4g} {rule['op']} {rule['threshold']:g} "
            f"over {found['rows']} rows")


def evaluate_rules(workspace, service: str, post=None, now: float | None = None) -> dict:
    """Evaluate every rule of ``service`` on its latest window; returns what fired, kept firing and resolved.

    Args:
        post: ``post(url, json)`` for webhooks (default httpx with a 5 s timeout); injectable for tests.
    """
    from modelyard.deploy.monitoring.reports import build_report
    from modelyard.deploy.state import append_event

    store = MonitorStore(workspace.engine)
    now = time.time() if now is None else now
    settings = store.settings(service)
    reports: dict = {}
    result = {"schema": "modelyard.monitor-check/1", "service": service, "fired": [], "firing": [],
              "resolved": [], "skipped": [], "webhooks": []}
    for rule in store.rules(service):
        spec = RuleSpec.model_validate({k: rule[k] for k in RuleSpec.model_fields})
        window = spec.window or settings.window
        if window not in reports:
            reports[window] = build_report(workspace, service, window=window, windows=1, settings=settings)
        latest = reports[window]["latest"]
        found = conditions(spec, latest)
        if found is None:
            result["skipped"].append({"rule": rule["id"], "reason": "no window with enough rows"})
            continue
        found.sort(key=lambda f: -(f["impact"] or 0.0))
        open_alerts = {row.dedup_key: row for row in store.firing(service, rule["id"])}
        to_send, last_post = [], store.last_post(service, rule["id"])
        for rank, item in enumerate(found, 1):
            detail = {"metric": item["metric"], "feature": item["feature"], "value": item["value"],
                      "effect": item["effect"], "effect_name": item.get("effect_name"),
                      "p_value": item.get("p_value"), "impact": item["impact"], "rank": rank,
                      "window_rows": item["rows"], "message": _message(service, rule, item)}
            row = open_alerts.pop(item["key"], None)
            if row is None:
                alert_id = store.insert_alert(service, rule["id"], item["key"], detail, {"console": True})
                append_event(workspace.home, service, f"alert: {detail['message']} [rule {rule['id']}]")
                result["fired"].append({"id": alert_id, **detail})
                to_send.append((alert_id, detail, 1))
            else:
                store.touch_alert(row.id, detail, row.count + 1)
                result["firing"].append({"id": row.id, **detail})
                if now - row.delivery.get("posted_at", 0.0) >= spec.cooldown_s:
                    to_send.append((row.id, detail, row.count + 1))
        for row in open_alerts.values():
            store.resolve_alert(row.id)
            append_event(workspace.home, service, f"resolved: {row.detail.get('message')} [rule {rule['id']}]")
            result["resolved"].append(row.id)
        if spec.webhook and to_send:
            if last_post and now - last_post < MIN_POST_GAP_S:
                result["webhooks"].append({"webhook": spec.webhook, "rate_limited": True})
                continue  # recorded; a new alert not posted now goes out with the next evaluation after the gap
            delivery = _deliver(spec.webhook, service, rule, [d for _, d, _ in to_send], post, now)
            result["webhooks"].append(delivery)
            for alert_id, detail, count in to_send:
                store.touch_alert(alert_id, detail, count, {"console": True, **delivery})
    return result


def _deliver(url: str, service: str, rule: dict, alerts: list[dict], post, now: float) -> dict:
    payload = {"schema": PAYLOAD_SCHEMA, "service": service, "rule": {k: rule[k] for k in
                                                                     ("id", "metric", "op", "threshold")},
               "alerts": alerts, "sent_at": now}
    try:
        if post is None:
            import httpx

            answer = httpx.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S)
            status = answer.status_code
        else:
            status = post(url, payload)
    except Exception as exc:  # noqa: BLE001 - an unreachable webhook is recorded, the alert stands
        log.warning("webhook %s: %s", url, exc)
        return {"webhook": url, "posted_at": now, "status": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"webhook": url, "posted_at": now, "status": status, "error": None}


CHECK_INTERVAL_S = 60.0


class RuleChecker:
    """Evaluates the alert rules of every running service every ``interval_s`` seconds, in a thread of the
    service supervisor (so alerts fire without anyone asking for a report). A failing service is logged and
    skipped; the others are still checked."""

    def __init__(self, workspace, interval_s: float = CHECK_INTERVAL_S):
        import threading

        self.workspace = workspace
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor-rules", daemon=True)

    def start(self) -> RuleChecker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)  # a daemon: a report still being judged must not hold up the supervisor's exit

    def check_once(self) -> None:
        import sqlalchemy as sa

        from modelyard.store.schema import services
        from modelyard.store.schema_monitoring import monitor_rules

        with self.workspace.engine.connect() as conn:
            query = (sa.select(monitor_rules.c.service).distinct()
                     .join(services, services.c.name == monitor_rules.c.service)
                     .where(services.c.state == "running"))
            names = [r[0] for r in conn.execute(query)]
        for name in names:
            if self._stop.is_set():
                return
            try:
                evaluate_rules(self.workspace, name)
            except Exception:  # noqa: BLE001 - one service's broken reference must not stop the others' alerts
                log.exception("monitoring: cannot evaluate the alert rules of %s", name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check_once()
