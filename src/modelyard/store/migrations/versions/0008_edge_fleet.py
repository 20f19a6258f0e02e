"""edge fleet: devices, bundles, deployments, alarms, logs

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"  # relinked after the rebase onto main (0005 -> ... -> 0007 monitoring): one chain
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "edge_devices",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("activation_hash", sa.String(64), nullable=True),
        sa.Column("activation_expires_at", Timestamp, nullable=True),
        sa.Column("credential_hash", sa.String(64), nullable=True),
        sa.Column("desired", JSONType, nullable=False),
        sa.Column("desired_version", sa.Integer, nullable=False),
        sa.Column("reported", JSONType, nullable=False),
        sa.Column("actions", JSONType, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.CheckConstraint("status IN ('registered','active','deregistered')", name=op.f("ck_edge_devices_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_devices")),
        sa.UniqueConstraint("name", name=op.f("uq_edge_devices_name")),
        sa.UniqueConstraint("credential_hash", name=op.f("uq_edge_devices_credential_hash")),
    )
    op.create_table(
        "edge_bundles",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("model_ref", sa.String(200), nullable=False),
        sa.Column("target", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("manifest", JSONType, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_bundles")),
    )
    op.create_table(
        "edge_deployments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("bundle_id", sa.String(40), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("status IN ('canary','rolling','succeeded','failed','cancelled','superseded')",
                           name=op.f("ck_edge_deployments_status")),
        sa.ForeignKeyConstraint(["bundle_id"], ["edge_bundles.id"],
                                name=op.f("fk_edge_deployments_bundle_id_edge_bundles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_deployments")),
    )
    op.create_table(
        "edge_deployment_devices",
        sa.Column("deployment_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("canary", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("previous", JSONType, nullable=False),
        sa.Column("active_since", Timestamp, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["deployment_id"], ["edge_deployments.id"],
                                name=op.f("fk_edge_deployment_devices_deployment_id_edge_deployments")),
        sa.ForeignKeyConstraint(["device_id"], ["edge_devices.id"],
                                name=op.f("fk_edge_deployment_devices_device_id_edge_devices")),
        sa.PrimaryKeyConstraint("deployment_id", "device_id", name=op.f("pk_edge_deployment_devices")),
    )
    op.create_table(
        "edge_alarms",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("acknowledged_at", Timestamp, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["edge_devices.id"], name=op.f("fk_edge_alarms_device_id_edge_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_alarms")),
    )
    op.create_index("ix_edge_alarms_device_id", "edge_alarms", ["device_id"])
    op.create_table(
        "edge_logs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["edge_devices.id"], name=op.f("fk_edge_logs_device_id_edge_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_edge_logs")),
    )
    op.create_index("ix_edge_logs_device_id", "edge_logs", ["device_id"])


def downgrade() -> None:
    for table in ("edge_logs", "edge_alarms", "edge_deployment_devices", "edge_deployments", "edge_bundles",
                  "edge_devices"):
        op.drop_table(table)
