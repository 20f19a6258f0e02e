"""``client.monitoring``: capture a service's traffic, read its drift / quality / performance report, send true
labels, manage alert rules and read alerts.

Example::

    client.monitoring.enable("penguins", sample_rate=1.0, window=500)   # reference: the training dataset
    answer = client.services.predict("penguins", {...})                  # replies carry x-modelyard-request-id
    client.monitoring.feedback("penguins", [{"request_id": rid, "label": "Adelie"}])
    report = client.monitoring.report("penguins")                        # report["latest"]["features"], ...
    client.monitoring.add_rule("penguins", "drift", webhook="http://127.0.0.1:9000/hook")
"""

from __future__ import annotations

from urllib.parse import quote


class Monitoring:
    def __init__(self, client):
        self._c = client

    def _path(self, name: str, tail: str = "") -> str:
        return f"/api/v1/services/{quote(name)}/monitoring{tail}"

    def status(self, name: str) -> dict:
        """Settings, capture counters (captured, dropped_full, ...), stored rows, rules, firing alerts."""
        return self._c.get_json(self._path(name))

    def update(self, name: str, **settings) -> dict:
        """Change settings (``sample_rate``, ``max_record_bytes``, ``retention_days``, ``reference``, ``window``,
        ``min_rows``, ``alpha``, ``min_effect``, ``queue_size``, ``flush_s``, ``enabled``)."""
        return self._c.request("PUT", self._path(name), json=settings).json()

    def enable(self, name: str, **settings) -> dict:
        """Turn capture on (with any settings to change)."""
        return self.update(name, enabled=True, **settings)

    def disable(self, name: str) -> dict:
        return self.update(name, enabled=False)

    def report(self, name: str, window: int | str | None = None, windows: int = 12) -> dict:
        """The last ``windows`` windows (rows or a duration), oldest first, and ``latest``."""
        params = {"windows": windows}
        if window is not None:
            params["window"] = str(window)
        return self._c.get_json(self._path(name, "/report"), params=params)

    def feedback(self, name: str, items: list[dict]) -> dict:
        """True labels: ``[{"request_id": ..., "label": ..., "row": 0}]``."""
        return self._c.request("POST", f"/api/v1/services/{quote(name)}/feedback", json={"items": items}).json()

    def rules(self, name: str) -> dict:
        return self._c.get_json(self._path(name, "/rules"))

    def add_rule(self, name: str, metric: str, op: str = ">", threshold: float = 0.0,
                 window: int | str | None = None, webhook: str | None = None, cooldown_s: float = 3600.0) -> dict:
        body = {"metric": metric, "op": op, "threshold": threshold, "window": window, "webhook": webhook,
                "cooldown_s": cooldown_s}
        return self._c.request("POST", self._path(name, "/rules"), json=body).json()

    def delete_rule(self, name: str, rule_id: str) -> dict:
        return self._c.request("DELETE", self._path(name, f"/rules/{quote(rule_id)}")).json()

    def alerts(self, name: str, state: str | None = None, limit: int = 100) -> dict:
        params = {"limit": limit, **({"state": state} if state else {})}
        return self._c.get_json(self._path(name, "/alerts"), params=params)

    def check(self, name: str) -> dict:
        """Evaluate the rules on the latest window now."""
        return self._c.request("POST", self._path(name, "/check")).json()
