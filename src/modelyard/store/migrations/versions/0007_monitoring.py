"""model monitoring: capture settings, captured segments, alert rules and alerts

Revision ID: 0007
Revises: 0006_dataset_kinds
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"  # after 0006_dataset_kinds -> 0006 (labeling): one chain
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "monitor_settings",
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_monitor_settings")),
    )
    op.create_table(
        "monitor_segments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("blob_digest", sa.String(71), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("first_ts", sa.Float, nullable=False),
        sa.Column("last_ts", sa.Float, nullable=False),
        sa.Column("source", sa.String(100), nullable=False, server_default=""),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_segments")),
    )
    op.create_index("ix_monitor_segments_service_kind_last_ts", "monitor_segments", ["service", "kind", "last_ts"])
    op.create_table(
        "monitor_rules",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_rules")),
    )
    op.create_index(op.f("ix_monitor_rules_service"), "monitor_rules", ["service"])
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("service", sa.String(100), nullable=False),
        sa.Column("rule_id", sa.String(40), nullable=False),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", JSONType, nullable=False),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("delivery", JSONType, nullable=False),
        sa.Column("first_at", Timestamp, nullable=False),
        sa.Column("last_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
    )
    op.create_index("ix_monitor_alerts_service_last_at", "monitor_alerts", ["service", "last_at"])


def downgrade() -> None:
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_rules")
    op.drop_table("monitor_segments")
    op.drop_table("monitor_settings")
