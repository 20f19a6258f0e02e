"""Tables of labeling jobs (issue 13): a job opened on a dataset version or on uploaded images, its team, its items
with their labels, proposals and review state, and the review log.

One row per item keeps the queue a single indexed query at any size (state, model score, uncertainty and the
hard-example flag are columns, not JSON); the review log is its own table because an item can be reviewed, rejected,
relabeled and reviewed again, and a labeler's pass rate counts every verdict.
"""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.store.schema import JSONType, Timestamp, metadata

LABELING_TASKS = ("classification", "multilabel", "detection", "text")
ITEM_STATES = ("unlabeled", "proposed", "labeled", "in_review", "accepted", "rejected")
MEMBER_ROLES = ("labeler", "reviewer")

labeling_jobs = sa.Table(
    "labeling_jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("task", sa.String(16), nullable=False),
    sa.Column("classes", JSONType, nullable=False),
    sa.Column("source", JSONType, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("published", JSONType, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.CheckConstraint("task IN ('classification','multilabel','detection','text')", name="task"),
)

labeling_members = sa.Table(
    "labeling_members",
    metadata,
    sa.Column("job_id", sa.String(40), sa.ForeignKey("labeling_jobs.id"), primary_key=True),
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("added_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("added_at", Timestamp, nullable=False),
    sa.CheckConstraint("role IN ('labeler','reviewer')", name="role"),
)

labeling_items = sa.Table(
    "labeling_items",
    metadata,
    sa.Column("job_id", sa.String(40), sa.ForeignKey("labeling_jobs.id"), primary_key=True),
    sa.Column("item", sa.String(1000), primary_key=True),
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
    sa.CheckConstraint("state IN ('unlabeled','proposed','labeled','in_review','accepted','rejected')", name="state"),
)
sa.Index("ix_labeling_items_job_id_state_position", labeling_items.c.job_id, labeling_items.c.state,
         labeling_items.c.position)
sa.Index("ix_labeling_items_job_id_position", labeling_items.c.job_id, labeling_items.c.position)
sa.Index("ix_labeling_items_job_id_score_position", labeling_items.c.job_id, labeling_items.c.score,
         labeling_items.c.position)
sa.Index("ix_labeling_items_job_id_uncertainty_position", labeling_items.c.job_id, labeling_items.c.uncertainty,
         labeling_items.c.position)
sa.Index("ix_labeling_items_job_id_hard_uncertainty_position", labeling_items.c.job_id, labeling_items.c.hard,
         labeling_items.c.uncertainty, labeling_items.c.position)
sa.Index("ix_labeling_items_job_id_assignee", labeling_items.c.job_id, labeling_items.c.assignee)

labeling_reviews = sa.Table(
    "labeling_reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(40), sa.ForeignKey("labeling_jobs.id"), nullable=False),
    sa.Column("item", sa.String(1000), nullable=False),
    sa.Column("labeler", sa.String(200), nullable=False),
    sa.Column("reviewer", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),
    sa.Column("rating", sa.String(1), nullable=True),
    sa.Column("comment", sa.Text, nullable=False, server_default=""),
    sa.Column("at", Timestamp, nullable=False),
    sa.CheckConstraint("outcome IN ('pass','reject')", name="outcome"),
    sa.CheckConstraint("rating IS NULL OR rating IN ('A','B','C','D')", name="rating"),
)
sa.Index("ix_labeling_reviews_job_id_labeler", labeling_reviews.c.job_id, labeling_reviews.c.labeler)
