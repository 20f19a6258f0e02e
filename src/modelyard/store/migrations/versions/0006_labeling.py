"""labeling jobs, members, items and reviews

Revision ID: 0006
Revises: 0006_dataset_kinds
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0006_dataset_kinds"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "labeling_jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("classes", JSONType, nullable=False),
        sa.Column("source", JSONType, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("published", JSONType, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("task IN ('classification','multilabel','detection','text')",
                           name=op.f("ck_labeling_jobs_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labeling_jobs")),
        sa.UniqueConstraint("name", name=op.f("uq_labeling_jobs_name")),
    )
    op.create_table(
        "labeling_members",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("added_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("added_at", Timestamp, nullable=False),
        sa.CheckConstraint("role IN ('labeler','reviewer')", name=op.f("ck_labeling_members_role")),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"],
                                name=op.f("fk_labeling_members_job_id_labeling_jobs")),
        sa.PrimaryKeyConstraint("job_id", "principal", name=op.f("pk_labeling_members")),
    )
    op.create_table(
        "labeling_items",
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("item", sa.String(1000), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(71), nullable=True),
        sa.Column("width", sa.Integer, nullable=False, server_default="0"),
        sa.Column("height", sa.Integer, nullable=False, server_default="0"),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("existing", JSONType, nullable=True),
        sa.Column("annotation", JSONType, nullable=True),
        sa.Column("proposal", JSONType, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("uncertainty", sa.Float, nullable=True),
        sa.Column("hard", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("source", sa.String(24), nullable=True),
        sa.Column("assignee", sa.String(200), nullable=True),
        sa.Column("labeled_by", sa.String(200), nullable=True),
        sa.Column("labeled_at", Timestamp, nullable=True),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("review", JSONType, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("state IN ('unlabeled','proposed','labeled','in_review','accepted','rejected')",
                           name=op.f("ck_labeling_items_state")),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"], name=op.f("fk_labeling_items_job_id_labeling_jobs")),
        sa.PrimaryKeyConstraint("job_id", "item", name=op.f("pk_labeling_items")),
    )
    op.create_index("ix_labeling_items_job_id_state_position", "labeling_items", ["job_id", "state", "position"])
    op.create_index("ix_labeling_items_job_id_position", "labeling_items", ["job_id", "position"])
    op.create_index("ix_labeling_items_job_id_score_position", "labeling_items", ["job_id", "score", "position"])
    op.create_index("ix_labeling_items_job_id_uncertainty_position", "labeling_items",
                    ["job_id", "uncertainty", "position"])
    op.create_index("ix_labeling_items_job_id_hard_uncertainty_position", "labeling_items",
                    ["job_id", "hard", "uncertainty", "position"])
    op.create_index("ix_labeling_items_job_id_assignee", "labeling_items", ["job_id", "assignee"])
    op.create_table(
        "labeling_reviews",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("item", sa.String(1000), nullable=False),
        sa.Column("labeler", sa.String(200), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("rating", sa.String(1), nullable=True),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("at", Timestamp, nullable=False),
        sa.CheckConstraint("outcome IN ('pass','reject')", name=op.f("ck_labeling_reviews_outcome")),
        sa.CheckConstraint("rating IS NULL OR rating IN ('A','B','C','D')", name=op.f("ck_labeling_reviews_rating")),
        sa.ForeignKeyConstraint(["job_id"], ["labeling_jobs.id"],
                                name=op.f("fk_labeling_reviews_job_id_labeling_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labeling_reviews")),
    )
    op.create_index("ix_labeling_reviews_job_id_labeler", "labeling_reviews", ["job_id", "labeler"])


def downgrade() -> None:
    op.drop_index("ix_labeling_reviews_job_id_labeler", table_name="labeling_reviews")
    op.drop_table("labeling_reviews")
    for name in ("assignee", "hard_uncertainty_position", "uncertainty_position", "score_position", "position",
                 "state_position"):
        op.drop_index(f"ix_labeling_items_job_id_{name}", table_name="labeling_items")
    op.drop_table("labeling_items")
    op.drop_table("labeling_members")
    op.drop_table("labeling_jobs")
