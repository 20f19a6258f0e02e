"""Edge fleet (issue 15): devices and their twins, signed bundles, deployments (one row per deployment and one per
device it targets), alarms and bounded device logs."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.store.schema import JSONType, Timestamp, metadata

edge_devices = sa.Table(
    "edge_devices",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("labels", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("activation_hash", sa.String(64), nullable=True),
    sa.Column("activation_expires_at", Timestamp, nullable=True),
    sa.Column("credential_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("desired", JSONType, nullable=False),
    sa.Column("desired_version", sa.Integer, nullable=False),
    sa.Column("reported", JSONType, nullable=False),
    sa.Column("actions", JSONType, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.CheckConstraint("status IN ('registered','active','deregistered')", name="status"),
)

edge_bundles = sa.Table(
    "edge_bundles",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("model_ref", sa.String(200), nullable=False),
    sa.Column("target", sa.String(40), nullable=False),
    sa.Column("digest", sa.String(71), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("manifest", JSONType, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
)

edge_deployments = sa.Table(
    "edge_deployments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("bundle_id", sa.String(40), sa.ForeignKey("edge_bundles.id"), nullable=False),
    sa.Column("spec", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.CheckConstraint("status IN ('canary','rolling','succeeded','failed','cancelled','superseded')", name="status"),
)

edge_deployment_devices = sa.Table(
    "edge_deployment_devices",
    metadata,
    sa.Column("deployment_id", sa.String(40), sa.ForeignKey("edge_deployments.id"), primary_key=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("edge_devices.id"), primary_key=True),
    sa.Column("canary", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("previous", JSONType, nullable=False),
    sa.Column("active_since", Timestamp, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
)

edge_alarms = sa.Table(
    "edge_alarms",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("edge_devices.id"), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("acknowledged_at", Timestamp, nullable=True),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
)
sa.Index("ix_edge_alarms_device_id", edge_alarms.c.device_id)

edge_logs = sa.Table(
    "edge_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("edge_devices.id"), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("line", sa.Text, nullable=False),
)
sa.Index("ix_edge_logs_device_id", edge_logs.c.device_id)
