"""Model monitoring (issue 18): per-service capture settings, the index of captured Parquet segments in the blob
store (``blob_digest`` keeps a segment alive through ``blobs gc`` until retention drops its row), alert rules and
the alerts they raised."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.store.schema import JSONType, Timestamp, metadata

monitor_settings = sa.Table(
    "monitor_settings",
    metadata,
    sa.Column("service", sa.String(100), primary_key=True),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("updated_at", Timestamp, nullable=False),
)

monitor_segments = sa.Table(
    "monitor_segments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # traffic | feedback
    sa.Column("blob_digest", sa.String(71), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("first_ts", sa.Float, nullable=False),  # epoch seconds of the first and last record
    sa.Column("last_ts", sa.Float, nullable=False),
    sa.Column("source", sa.String(100), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index("ix_monitor_segments_service_kind_last_ts", "service", "kind", "last_ts"),
)

monitor_rules = sa.Table(
    "monitor_rules",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("service", sa.String(100), nullable=False, index=True),
    sa.Column("spec", JSONType, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
)

monitor_alerts = sa.Table(
    "monitor_alerts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("rule_id", sa.String(40), nullable=False),
    sa.Column("dedup_key", sa.String(300), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("detail", JSONType, nullable=False),
    sa.Column("count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("delivery", JSONType, nullable=False),
    sa.Column("first_at", Timestamp, nullable=False),
    sa.Column("last_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp, nullable=True),
    sa.Index("ix_monitor_alerts_service_last_at", "service", "last_at"),
)
