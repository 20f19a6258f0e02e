"""Acceptances of migration reports (issue 12): who accepted which report (by its sha256), when, and whether its
acceptance checklist had passed. One acceptance per migration job; the row is the customer's sign-off."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.store.schema import Timestamp, metadata

migration_acceptances = sa.Table(
    "migration_acceptances",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("job_id", sa.String(40), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("report_digest", sa.String(71), nullable=False),
    sa.Column("checklist_passed", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("accepted_by", sa.String(200), nullable=False),
    sa.Column("accepted_at", Timestamp, nullable=False),
)
