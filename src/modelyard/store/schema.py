"""Table definitions (SQLAlchemy Core). The Alembic migrations under ``migrations/versions`` create them;
a test checks that the migrated database matches this metadata, so the two cannot drift."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("spec", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("result", JSONType, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("owner", sa.String(200), nullable=False, server_default=""),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("pid_started", sa.Float, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("heartbeat_at", Timestamp, nullable=True),
    sa.CheckConstraint("status IN ('queued','running','succeeded','failed','cancelled')", name="status"),
    sa.CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
)
sa.Index("ix_jobs_status_created_at", jobs.c.status, jobs.c.created_at)
sa.Index("ix_jobs_kind", jobs.c.kind)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_used_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.CheckConstraint("role IN ('viewer','editor','admin')", name="role"),
)

# -- model registry and services (issue 6) ---------------------------------------------------------------------------

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("model_id", sa.String(40), sa.ForeignKey("models.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("source_format", sa.String(32), nullable=False),
    sa.Column("entry", sa.String(500), nullable=False),
    sa.Column("files", JSONType, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("signature", JSONType, nullable=False),
    sa.Column("metrics", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("lineage", JSONType, nullable=False),
    sa.Column("card", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", sa.String(40), sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(100), primary_key=True),
    sa.Column("version_id", sa.String(40), sa.ForeignKey("model_versions.id"), nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("updated_at", Timestamp, nullable=False),
)

SERVICE_STATES = ("running", "stopped")
REVISION_STATUSES = ("pending", "live", "failed", "superseded")

services = sa.Table(
    "services",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("port", sa.Integer, nullable=False),
    sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("replicas", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("live_revision", sa.Integer, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.CheckConstraint("state IN ('running','stopped')", name="state"),
    sa.CheckConstraint("replicas >= 1", name="replicas"),
)

service_revisions = sa.Table(
    "service_revisions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("service_id", sa.String(40), sa.ForeignKey("services.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("traffic", JSONType, nullable=False),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.UniqueConstraint("service_id", "revision", name="uq_service_revisions_service_id_revision"),
    sa.CheckConstraint("status IN ('pending','live','failed','superseded')", name="status"),
)
