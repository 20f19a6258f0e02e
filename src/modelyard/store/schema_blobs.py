"""Pins: blobs that garbage collection must keep although no dataset, model version, run or job refers to them
(``blobs put`` pins what a user stores by hand; ``blobs pin`` pins anything else)."""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.store.schema import Timestamp, metadata

blob_pins = sa.Table(
    "blob_pins",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", Timestamp, nullable=False),
)
