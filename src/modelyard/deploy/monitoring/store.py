"""Monitoring rows of one workspace: a service's capture settings, the index of its captured Parquet segments,
its alert rules and the alerts they raised.

Settings live in the database, not in the replica's config, so turning capture on, off or down takes effect in
running replicas within a few seconds (they re-read them) without a new revision.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.store.db import as_utc
from modelyard.store.schema_monitoring import monitor_alerts, monitor_rules, monitor_segments, monitor_settings

_WINDOW = re.compile(r"^(\d+)(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` -> seconds."""
    match = _WINDOW.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise InvalidInput(f"duration {text!r}: expected a positive number with s, m, h or d (e.g. 15m)")
    return float(int(match.group(1)) * _UNITS[match.group(2)])


def check_window(value: str | int) -> str | int:
    """A window is a row count (``500``) or a duration (``"1h"``)."""
    if isinstance(value, bool):
        raise InvalidInput("window: a row count or a duration such as 1h")
    if isinstance(value, int):
        if value < 10:
            raise InvalidInput(f"window: {value} rows is too few to judge anything; give at least 10")
        return value
    if isinstance(value, str) and value.isdigit():
        return check_window(int(value))
    parse_duration(str(value))
    return value


class MonitorSettings(BaseModel):
    """What a service captures and how its windows are judged (``modelyard monitor enable``).

    Args:
        enabled: capture traffic at all. Default False (off).
        sample_rate: share of requests captured, 0-1. Default 1.0.
        max_record_bytes: a captured request's inputs larger than this are kept as a summary only (size,
            brightness, an embedding); default 4096.
        retention_days: segments older than this are dropped (their blobs then go with ``blobs gc``). Default 30.
        reference: ``training`` (the dataset version in the model's lineage, its training split), a dataset
            version ``NAME@V``, or a time window of this service's own traffic ``window:START..END`` (ISO
            times or epoch seconds). Default training.
        window: rows per window (an int) or a duration (``1h``). Default 500.
        min_rows: a window with fewer rows is reported as insufficient, never as drift. Default 50.
        alpha: family-wise significance over a window's tests (Bonferroni). Default 0.005: at most one
            stationary window in 200 raises a flag by chance, leaving room for the reference sample's own noise
            (every window is compared with the same reference, so its luck is shared) within a 1 % budget.
        min_effect: the smallest effect size that counts as drift (normed Wasserstein for numbers,
            Jensen-Shannon distance for categories). Default 0.1.
        queue_size: captured requests buffered in a replica before new ones are dropped (and counted). Default
            10000.
        flush_s: a replica writes a segment at least this often while it has records. Default 5.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    max_record_bytes: int = Field(default=4096, ge=64, le=16 * 1024 * 1024)
    retention_days: float = Field(default=30.0, gt=0, le=3650)
    reference: str = Field(default="training", min_length=1, max_length=300)
    window: int | str = 500
    min_rows: int = Field(default=50, ge=10, le=1_000_000)
    alpha: float = Field(default=0.005, gt=0, lt=0.5)
    min_effect: float = Field(default=0.1, gt=0, le=1.0)
    queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    flush_s: float = Field(default=5.0, ge=0.05, le=3600)

    @field_validator("window")
    @classmethod
    def _window(cls, value):
        return check_window(value)

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value == "training" or value.startswith("window:"):
            return value
        if "@" not in value:
            raise InvalidInput(f"reference {value!r}: 'training', a dataset version NAME@V or window:START..END")
        return value


class RuleSpec(BaseModel):
    """An alert rule (``modelyard monitor rules add``).

    Args:
        metric: ``drift`` (any feature's drift, value = its effect size), ``drift_share`` (share of drifted
            features), ``prediction_drift``, ``embedding_drift``, ``estimated_accuracy``, ``accuracy``,
            ``error_rate``, ``latency_p95_ms``, ``missing_share``, ``out_of_range_share``, ``unseen_share``.
        op: ``>`` or ``<``; the rule fires when ``metric op threshold`` holds on the latest full window. For
            ``drift`` and ``prediction_drift`` the test's verdict must hold as well (significance and effect).
        threshold: the value compared with.
        window: rows or a duration (default: the service's window).
        webhook: a URL the alert is POSTed to as JSON (none: console and events log only).
        cooldown_s: the same alert is sent again at most this often while it keeps firing. Default 3600.
    """

    model_config = ConfigDict(extra="forbid")

    metric: Literal["drift", "drift_share", "prediction_drift", "embedding_drift", "estimated_accuracy",
                    "accuracy", "error_rate", "latency_p95_ms", "missing_share", "out_of_range_share",
                    "unseen_share"]
    op: Literal[">", "<"] = ">"
    threshold: float = Field(default=0.0, allow_inf_nan=False)
    window: int | str | None = None
    webhook: str | None = Field(default=None, max_length=2000)
    cooldown_s: float = Field(default=3600.0, ge=0, le=30 * 86400)

    @field_validator("window")
    @classmethod
    def _window(cls, value):
        return None if value is None else check_window(value)

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise InvalidInput(f"webhook {value!r}: an http:// or https:// URL")
        return value


@dataclass(frozen=True)
class Segment:
    id: str
    kind: str
    digest: str
    rows: int
    first_ts: float
    last_ts: float


class MonitorStore:
    """Monitoring rows of one workspace. Constructing it does no I/O."""

    def __init__(self, engine):
        self.engine = engine

    # -- settings -----------------------------------------------------------------------------------------------
    def settings(self, service: str) -> MonitorSettings:
        """The service's settings (defaults, capture off, when never set)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(monitor_settings.c.config)
                               .where(monitor_settings.c.service == service)).first()
        return MonitorSettings.model_validate(row.config) if row else MonitorSettings()

    def set_settings(self, service: str, changes: dict, updated_by: str = "") -> MonitorSettings:
        """Merge ``changes`` into the stored settings (validated as a whole) and store them."""
        merged = MonitorSettings.model_validate({**self.settings(service).model_dump(), **changes})
        config, now = merged.model_dump(), utcnow()
        with self.engine.begin() as conn:
            done = conn.execute(monitor_settings.update().where(monitor_settings.c.service == service)
                                .values(config=config, updated_by=updated_by, updated_at=now))
            if not done.rowcount:
                conn.execute(monitor_settings.insert().values(service=service, config=config,
                                                              updated_by=updated_by, updated_at=now))
        return merged

    # -- segments -----------------------------------------------------------------------------------------------
    def add_segment(self, service: str, kind: str, digest: str, rows: int, first_ts: float, last_ts: float,
                    source: str = "") -> None:
        with self.engine.begin() as conn:
            conn.execute(monitor_segments.insert().values(
                id=new_id("mseg"), service=service, kind=kind, blob_digest=digest, rows=rows, first_ts=first_ts,
                last_ts=last_ts, source=source[:100], created_at=utcnow()))

    def segments(self, service: str, kind: str, since: float | None = None,
                 until: float | None = None) -> list[Segment]:
        """Segments of ``kind`` that hold records in ``[since, until]``, oldest first."""
        query = sa.select(monitor_segments).where(monitor_segments.c.service == service,
                                                  monitor_segments.c.kind == kind)
        if since is not None:
            query = query.where(monitor_segments.c.last_ts >= since)
        if until is not None:
            query = query.where(monitor_segments.c.first_ts <= until)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(monitor_segments.c.first_ts)).all()
        return [Segment(r.id, r.kind, r.blob_digest, r.rows, r.first_ts, r.last_ts) for r in rows]

    def totals(self, service: str) -> dict[str, tuple[int, int]]:
        """``kind -> (segments, rows)`` stored for the service (one aggregate query)."""
        query = (sa.select(monitor_segments.c.kind, sa.func.count(), sa.func.coalesce(sa.func.sum(
            monitor_segments.c.rows), 0)).where(monitor_segments.c.service == service)
            .group_by(monitor_segments.c.kind))
        with self.engine.connect() as conn:
            return {kind: (int(count), int(rows)) for kind, count, rows in conn.execute(query)}

    def prune(self, service: str, retention_days: float, now: float | None = None) -> int:
        """Drop the rows of segments older than the retention (their blobs go with the next ``blobs gc``)."""
        cutoff = (now if now is not None else time.time()) - retention_days * 86400
        with self.engine.begin() as conn:
            return conn.execute(monitor_segments.delete().where(monitor_segments.c.service == service,
                                                                monitor_segments.c.last_ts < cutoff)).rowcount

    # -- rules --------------------------------------------------------------------------------------------------
    def add_rule(self, service: str, spec: RuleSpec, created_by: str = "") -> dict:
        rule_id, now = new_id("mrule"), utcnow()
        with self.engine.begin() as conn:
            conn.execute(monitor_rules.insert().values(id=rule_id, service=service, spec=spec.model_dump(),
                                                       created_by=created_by, created_at=now))
        return self._rule_dict(rule_id, service, spec.model_dump(), created_by, now)

    @staticmethod
    def _rule_dict(rule_id, service, spec, created_by, created_at) -> dict:
        return {"schema": "modelyard.monitor-rule/1", "id": rule_id, "service": service, **spec,
                "created_by": created_by, "created_at": isoformat(as_utc(created_at))}

    def rules(self, service: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(monitor_rules).where(monitor_rules.c.service == service)
                                .order_by(monitor_rules.c.id)).all()
        return [self._rule_dict(r.id, r.service, r.spec, r.created_by, r.created_at) for r in rows]

    def delete_rule(self, service: str, rule_id: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(monitor_rules.delete().where(monitor_rules.c.service == service,
                                                             monitor_rules.c.id == rule_id))
        if not done.rowcount:
            raise NotFound(f"service {service!r} has no alert rule {rule_id!r}")

    # -- alerts -------------------------------------------------------------------------------------------------
    def open_alert(self, service: str, rule_id: str, dedup_key: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(monitor_alerts).where(
                monitor_alerts.c.service == service, monitor_alerts.c.rule_id == rule_id,
                monitor_alerts.c.dedup_key == dedup_key, monitor_alerts.c.state == "firing")).first()

    def firing(self, service: str, rule_id: str) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(monitor_alerts).where(
                monitor_alerts.c.service == service, monitor_alerts.c.rule_id == rule_id,
                monitor_alerts.c.state == "firing")).all()

    def last_post(self, service: str, rule_id: str) -> float:
        """When the rule last posted to its webhook (epoch seconds; 0 never), over its recent alerts."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(monitor_alerts.c.delivery).where(
                monitor_alerts.c.service == service, monitor_alerts.c.rule_id == rule_id)
                .order_by(monitor_alerts.c.last_at.desc()).limit(200)).all()
        return max((float(r.delivery.get("posted_at") or 0.0) for r in rows), default=0.0)

    def insert_alert(self, service: str, rule_id: str, dedup_key: str, detail: dict, delivery: dict) -> str:
        alert_id, now = new_id("malert"), utcnow()
        with self.engine.begin() as conn:
            conn.execute(monitor_alerts.insert().values(
                id=alert_id, service=service, rule_id=rule_id, dedup_key=dedup_key[:300], state="firing",
                detail=detail, count=1, delivery=delivery, first_at=now, last_at=now))
        return alert_id

    def touch_alert(self, alert_id: str, detail: dict, count: int, delivery: dict | None = None) -> None:
        values = {"detail": detail, "count": count, "last_at": utcnow()}
        if delivery is not None:
            values["delivery"] = delivery
        with self.engine.begin() as conn:
            conn.execute(monitor_alerts.update().where(monitor_alerts.c.id == alert_id).values(**values))

    def resolve_alert(self, alert_id: str) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(monitor_alerts.update().where(monitor_alerts.c.id == alert_id)
                         .values(state="resolved", resolved_at=now, last_at=now))

    def alerts(self, service: str, limit: int = 100, state: str | None = None) -> list[dict]:
        query = sa.select(monitor_alerts).where(monitor_alerts.c.service == service)
        if state:
            query = query.where(monitor_alerts.c.state == state)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(monitor_alerts.c.last_at.desc()).limit(limit)).all()
        return [{"schema": "modelyard.monitor-alert/1", "id": r.id, "service": r.service, "rule_id": r.rule_id,
                 "state": r.state, "count": r.count, **r.detail, "delivery": r.delivery,
                 "first_at": isoformat(as_utc(r.first_at)), "last_at": isoformat(as_utc(r.last_at)),
                 "resolved_at": isoformat(as_utc(r.resolved_at))} for r in rows]
