"""What the monitoring routes answer (see :mod:`modelyard.server.responses` for why these are closed models)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelyard.server.responses import _Closed, _schema_field


class MonitorStatus(_Closed):
    schema_: Literal["modelyard.monitor-status/1"] = _schema_field("modelyard.monitor-status/1")
    service: str
    settings: dict[str, Any]
    capture: dict[str, Any] = Field(description="Counters summed over the replicas: offered, captured, "
                                                "dropped_full (queue full), written_rows, segments, errors, ...")
    segments: int
    captured_rows: int
    feedback_rows: int
    rules: int
    firing: int


class MonitorReport(_Closed):
    schema_: Literal["modelyard.monitor-report/1"] = _schema_field("modelyard.monitor-report/1")
    service: str
    generated_at: float
    window: int | str
    settings: dict[str, Any]
    capture: dict[str, Any]
    reference: dict[str, Any] | None
    windows: list[dict[str, Any]] = Field(description="Oldest first: drift per feature (ranked by impact), "
                                                      "predictions, embeddings, quality, performance, latency")
    latest: dict[str, Any] | None
    message: str | None = None


class FeedbackAccepted(_Closed):
    schema_: Literal["modelyard.feedback/1"] = _schema_field("modelyard.feedback/1")
    accepted: int


class MonitorRule(_Closed):
    schema_: Literal["modelyard.monitor-rule/1"] = _schema_field("modelyard.monitor-rule/1")
    id: str
    service: str
    metric: str
    op: Literal[">", "<"]
    threshold: float
    window: int | str | None
    webhook: str | None
    cooldown_s: float
    created_by: str
    created_at: str | None


class MonitorRuleList(_Closed):
    schema_: Literal["modelyard.monitor-rule-list/1"] = _schema_field("modelyard.monitor-rule-list/1")
    items: list[MonitorRule]


class MonitorRuleDeleted(_Closed):
    schema_: Literal["modelyard.monitor-rule-deleted/1"] = _schema_field("modelyard.monitor-rule-deleted/1")
    id: str


class MonitorAlertList(_Closed):
    schema_: Literal["modelyard.monitor-alert-list/1"] = _schema_field("modelyard.monitor-alert-list/1")
    items: list[dict[str, Any]] = Field(description="Newest first; each names its metric, feature, effect size, "
                                                    "rank by estimated impact, state and deliveries")


class MonitorCheck(_Closed):
    schema_: Literal["modelyard.monitor-check/1"] = _schema_field("modelyard.monitor-check/1")
    service: str
    fired: list[dict[str, Any]]
    firing: list[dict[str, Any]]
    resolved: list[str]
    skipped: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]
