"""edge events and hard examples per device and channel

Revision ID: 0010_edge_events
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010_edge_events"
down_revision = "0009"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "edge_events",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("skill", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("pts", sa.Float, nullable=True),
        sa.Column("event", JSONType, nullable=False),
        sa.Column("thumbnail", sa.String(71), nullable=True),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["edge_devices.id"], name=op.f("fk_edge_events_device_id_edge_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_events")),
    )
    op.create_index("ix_edge_events_device_channel_at", "edge_events", ["device_id", "channel", "at"])
    op.create_table(
        "edge_hard_examples",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("skill", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("inference", JSONType, nullable=False),
        sa.Column("labeling_job", sa.String(100), nullable=True),
        sa.Column("item", sa.String(300), nullable=True),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["edge_devices.id"],
                                name=op.f("fk_edge_hard_examples_device_id_edge_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_hard_examples")),
        sa.UniqueConstraint("device_id", "digest", name=op.f("uq_edge_hard_examples_device_id")),
    )
    op.create_index("ix_edge_hard_examples_device_channel", "edge_hard_examples", ["device_id", "channel"])


def downgrade() -> None:
    op.drop_table("edge_hard_examples")
    op.drop_table("edge_events")
