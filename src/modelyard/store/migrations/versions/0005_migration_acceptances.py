"""acceptances of migration reports

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "migration_acceptances",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("report_digest", sa.String(71), nullable=False),
        sa.Column("checklist_passed", sa.Boolean, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("accepted_by", sa.String(200), nullable=False),
        sa.Column("accepted_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_acceptances")),
        sa.UniqueConstraint("job_id", name=op.f("uq_migration_acceptances_job_id")),
    )


def downgrade() -> None:
    op.drop_table("migration_acceptances")
