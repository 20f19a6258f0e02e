"""Edge events and hard examples (issue 16): what the skills running on a device emit, stored per device and channel.

A hard example's image lives in the blob store (content-addressed: the same frame sent twice is stored once); the row
is unique per device and image digest, so a device that resends a queued report does not duplicate anything.
"""

from __future__ import annotations

import sqlalchemy as sa

from modelyard.store.schema import JSONType, Timestamp, metadata

edge_events = sa.Table(
    "edge_events",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("edge_devices.id"), nullable=False),
    sa.Column("skill", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("pts", sa.Float, nullable=True),
    sa.Column("event", JSONType, nullable=False),
    sa.Column("thumbnail", sa.String(71), nullable=True),
    sa.Column("received_at", Timestamp, nullable=False),
)
sa.Index("ix_edge_events_device_channel_at", edge_events.c.device_id, edge_events.c.channel, edge_events.c.at)

edge_hard_examples = sa.Table(
    "edge_hard_examples",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("device_id", sa.String(40), sa.ForeignKey("edge_devices.id"), nullable=False),
    sa.Column("skill", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("digest", sa.String(71), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("inference", JSONType, nullable=False),
    sa.Column("labeling_job", sa.String(100), nullable=True),
    sa.Column("item", sa.String(300), nullable=True),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.UniqueConstraint("device_id", "digest"),
)
sa.Index("ix_edge_hard_examples_device_channel", edge_hard_examples.c.device_id, edge_hard_examples.c.channel)
