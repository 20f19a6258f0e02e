"""Tables of datasets (immutable versions) and tracked runs (issue 7), on the shared ``metadata``.

A dataset version row points at a manifest blob (content hashes of every file); the row and its blobs are written
blobs-first, row-in-one-transaction, so a failed import never leaves a partial version behind.
"""

from __future__ import annotations

import math

import sqlalchemy as sa

from modelyard.store.schema import JSONType, Timestamp, metadata


class MetricValue(sa.types.TypeDecorator):
    """A float column that also holds NaN and +-Infinity (MLflow stores them too; a NaN loss is a fact worth
    keeping). SQLite's REAL turns NaN into NULL, so there NaN is stored as the text 'NaN' (an SQLite column keeps
    any type); PostgreSQL's double precision holds all three itself."""

    impl = sa.Float
    cache_ok = True

    def bind_processor(self, dialect):
        # NOTE: replaces (not chains) the Float processor, which would turn the text back into a float NaN
        if dialect.name != "sqlite":
            return None

        def process(value):
            return "NaN" if isinstance(value, float) and math.isnan(value) else value

        return process

    def process_result_value(self, value, dialect):
        return None if value is None else float(value)


DATASET_KINDS = ("tabular", "image-classification", "object-detection", "multilabel-classification",
                 "text-classification", "text")
RUN_STATUSES = ("running", "finished", "failed", "killed")

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.CheckConstraint("kind IN (" + ",".join(f"'{kind}'" for kind in DATASET_KINDS) + ")", name="kind"),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("dataset_id", sa.String(40), sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("manifest_digest", sa.String(71), nullable=False),
    sa.Column("schema", JSONType, nullable=False),
    sa.Column("split", JSONType, nullable=False),
    sa.Column("stats", JSONType, nullable=False),
    sa.Column("lineage", JSONType, nullable=False),
    sa.Column("source", JSONType, nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_id_version"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("experiment", sa.String(200), nullable=False, server_default="default"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("metrics", JSONType, nullable=False),
    sa.Column("artifacts", JSONType, nullable=False),
    sa.Column("dataset", sa.String(200), nullable=True),
    sa.Column("job_id", sa.String(40), nullable=True),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp, nullable=True),
    sa.CheckConstraint("status IN ('running','finished','failed','killed')", name="status"),
)
sa.Index("ix_runs_experiment_started_at", runs.c.experiment, runs.c.started_at)

run_metrics = sa.Table(
    "run_metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("value", MetricValue, nullable=False),
    sa.Column("at", Timestamp, nullable=False),
)
sa.Index("ix_run_metrics_run_id_key_step", run_metrics.c.run_id, run_metrics.c.key, run_metrics.c.step)

run_logs = sa.Table(
    "run_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("line", sa.Text, nullable=False),
)
sa.Index("ix_run_logs_run_id", run_logs.c.run_id)
