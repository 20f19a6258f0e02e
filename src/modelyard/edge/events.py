"""Device events and hard examples on the platform: what the skills on a device emit, stored per device and channel.

The agent sends both inside its reports (queued on the device while the platform is away), so ingestion runs in the
report's request, for the device the credential belongs to and no other. Bounds: at most ``MAX_EVENTS_PER_REPORT``
events and ``MAX_HARD_EXAMPLES_PER_REPORT`` hard examples per report, a thumbnail or hard-example image of at most
``MAX_IMAGE_BYTES`` (``MAX_THUMBNAIL_BYTES``) and ``MAX_IMAGE_PIXELS`` (``MAX_THUMBNAIL_PIXELS``), read from the
header before anything is decoded; a hard example is stored only when it decodes as the labeling import will decode it
(a broken one stored would fail every later import of the device's hard examples). What is over a bound or broken is
counted in the answer, not stored. Images go to the blob store
(content-addressed), and a hard example is unique per device and image digest, so a resent report adds nothing.

Hard examples are queued for labeling: each skill has one labeling job, ``edge-hard-<skill>``, opened on the first
hard example (an unlabeled import of uploaded images, ``data.labeling``), and every further one is added to it as an
item flagged ``hard`` (first in the labelers' hard queue), named ``<device>/<channel>/<digest>.jpg``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import math
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from modelyard.core.errors import InvalidInput
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.edge.devices import write_transaction
from modelyard.store.db import as_utc
from modelyard.store.schema_edge import edge_devices
from modelyard.store.schema_edge_events import edge_events, edge_hard_examples

MAX_EVENTS_PER_REPORT = 1000
MAX_HARD_EXAMPLES_PER_REPORT = 20
MAX_IMAGE_BYTES = 512 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
# the agent sends 160-pixel-wide thumbnails; browsers decode these on the device page
MAX_THUMBNAIL_BYTES = 64 * 1024
MAX_THUMBNAIL_PIXELS = 1024 * 1024
MAX_EVENT_JSON_CHARS = 8000
MAX_PAGE = 500
MAX_OFFSET = 2**31 - 1  # SQLite's OFFSET takes a 64-bit integer: a larger one is an error, not an empty page
LABELING_OWNER = "edge-hard-examples"
_LABELING_QUEUE = threading.Lock()
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
log = logging.getLogger("modelyard.edge.events")


@dataclass(frozen=True)
class _System:
    """The actor that opens and fills hard-example labeling jobs (their owner)."""

    name: str = LABELING_OWNER
    role: str = "editor"


def _safe(part: str, limit: int = 80) -> str:
    """A name a labeling item or job may carry (no path tricks: ``..`` becomes ``--``)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else "-" for ch in part)[:limit]
    return safe or "-"


def labeling_job_name(skill: str) -> str:
    return f"edge-hard-{_safe(skill)}"


def _jpeg(data_b64, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS, *,
          decode: bool = False) -> bytes | None:
    """Decoded JPEG bytes, or None when the field is not a base64 JPEG within the size and pixel bounds (and, with
    ``decode``, one whose every pixel decodes)."""
    if not isinstance(data_b64, str) or len(data_b64) > max_bytes * 4 // 3 + 4:
        return None
    try:
        data = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    if data[:2] != b"\xff\xd8" or len(data) > max_bytes:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:  # reads the header only
            if image.width * image.height > max_pixels:
                return None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if decode:
        from modelyard.data.images import inspect_image

        if inspect_image(data).get("error"):
            return None
    return data


def _when(value) -> datetime:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return utcnow()
    if not math.isfinite(seconds) or seconds <= 0:
        return utcnow()
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _text(value, limit: int = 100) -> str:
    return str(value if value is not None else "")[:limit] or "-"


class EdgeEvents:
    def __init__(self, workspace):
        self.workspace = workspace
        self.engine = workspace.engine

    # -- device side (called with the authenticated device's id only) ------------------------------------------------
    def ingest(self, device_id: str, events: list | None, hard_examples: list | None) -> dict:
        """Store one report's events and hard examples; returns what was stored, deduplicated and left out."""
        import json

        events = events if isinstance(events, list) else []
        hard_examples = hard_examples if isinstance(hard_examples, list) else []
        now = utcnow()
        rows, left_out = [], max(0, len(events) - MAX_EVENTS_PER_REPORT)
        for event in events[:MAX_EVENTS_PER_REPORT]:
            if not isinstance(event, dict) or not isinstance(event.get("event"), dict) \
                    or len(json.dumps(event["event"])) > MAX_EVENT_JSON_CHARS:
                left_out += 1
                continue
            thumbnail = None
            if event.get("thumbnail_jpeg_b64"):
                data = _jpeg(event["thumbnail_jpeg_b64"], MAX_THUMBNAIL_BYTES, MAX_THUMBNAIL_PIXELS)
                thumbnail = self.workspace.blobs.put_bytes(data).digest if data else None
            pts = event.get("pts")
            # the agent names each event, so a report it resends (the answer was lost) stores nothing twice
            given = event.get("id")
            # ... and names it on this device only: the stored id is derived from the device's id too, so another
            # device sending the same id neither collides with nor suppresses this one
            event_id = "evt_" + hashlib.sha256(f"{device_id}/{given}".encode()).hexdigest()[:32] \
                if isinstance(given, str) and _EVENT_ID.match(given) else new_id("evt")
            rows.append({"id": event_id, "device_id": device_id, "skill": _text(event.get("skill")),
                         "channel": _text(event.get("channel")), "at": _when(event.get("ts")),
                         "pts": float(pts) if isinstance(pts, int | float) and math.isfinite(pts) else None,
                         "event": event["event"], "thumbnail": thumbnail, "received_at": now})
        hard_rows = []
        left_out += max(0, len(hard_examples) - MAX_HARD_EXAMPLES_PER_REPORT)
        for example in hard_examples[:MAX_HARD_EXAMPLES_PER_REPORT]:
            data = _jpeg(example.get("image_jpeg_b64"), decode=True) if isinstance(example, dict) else None
            if data is None:
                left_out += 1
                continue
            digest = self.workspace.blobs.put_bytes(data).digest
            inference = example.get("inference") if isinstance(example.get("inference"), dict) else {}
            hard_rows.append({"id": new_id("hex"), "device_id": device_id, "skill": _text(example.get("skill")),
                              "channel": _text(example.get("channel")), "at": _when(example.get("ts")),
                              "digest": digest, "reason": str(example.get("reason") or "")[:500],
                              "inference": inference if len(json.dumps(inference)) <= MAX_EVENT_JSON_CHARS else {},
                              "received_at": now})
        duplicates = 0
        with write_transaction(self.engine) as conn:
            if rows:
                known = set(conn.execute(sa.select(edge_events.c.id).where(
                    edge_events.c.id.in_([r["id"] for r in rows]))).scalars())
                fresh_events = [r for r in rows if r["id"] not in known]
                duplicates += len(rows) - len(fresh_events)
                rows = list({r["id"]: r for r in fresh_events}.values())
            if rows:
                conn.execute(edge_events.insert(), rows)
            if hard_rows:
                known = set(conn.execute(sa.select(edge_hard_examples.c.digest).where(
                    edge_hard_examples.c.device_id == device_id,
                    edge_hard_examples.c.digest.in_([r["digest"] for r in hard_rows]))).scalars())
                fresh = []
                for row in hard_rows:
                    if row["digest"] in known:
                        duplicates += 1
                        continue
                    known.add(row["digest"])
                    fresh.append(row)
                if fresh:
                    conn.execute(edge_hard_examples.insert(), fresh)
                hard_rows = fresh
        if hard_rows or duplicates:
            try:
                self._queue_for_labeling(device_id)
            except Exception:  # noqa: BLE001 - stored already: failing the report would make the agent resend it
                log.exception("queueing hard examples of device %s for labeling failed; retried with its next ones",
                              device_id)
        return {"events": len(rows), "hard_examples": len(hard_rows), "duplicates": duplicates,
                "left_out": left_out}

    def _queue_for_labeling(self, device_id: str) -> None:
        """Queue this device's hard examples that no labeling job holds yet (a failure here is retried with the
        device's next hard example, so none is left out for good)."""
        from modelyard.core.errors import Conflict
        from modelyard.data.labeling.service import LabelingStore

        store = LabelingStore(self.workspace)
        with self.engine.connect() as conn:
            device = conn.execute(sa.select(edge_devices.c.name).where(edge_devices.c.id == device_id)).scalar_one()
            rows = conn.execute(sa.select(edge_hard_examples).where(
                edge_hard_examples.c.device_id == device_id, edge_hard_examples.c.labeling_job.is_(None))
                .order_by(edge_hard_examples.c.received_at).limit(MAX_HARD_EXAMPLES_PER_REPORT * 5)).all()
        by_skill: dict[str, list] = {}
        for row in rows:
            by_skill.setdefault(row.skill, []).append(row)
        for skill, skill_rows in by_skill.items():
            job = labeling_job_name(skill)
            files = {f"{_safe(device)}/{_safe(r.channel)}/{r.digest.removeprefix('sha256:')[:16]}.jpg": r.digest
                     for r in skill_rows}
            with _LABELING_QUEUE:  # two devices' first hard examples must not both open the job
                # ... in this process; another server process (on PostgreSQL) may still open the job or add an item
                # between our look and our write: that Conflict is looked at again once
                for attempt in (1, 2):
                    try:
                        self._add_to_job(store, job, skill, files, skill_rows)
                        break
                    except Conflict:
                        if attempt == 2:
                            raise
                store.set_priorities(job, _System(), {item: {"hard": True} for item in files})
            with write_transaction(self.engine) as conn:
                for item, row in zip(files, skill_rows, strict=True):
                    conn.execute(edge_hard_examples.update().where(edge_hard_examples.c.id == row.id)
                                 .values(labeling_job=job, item=item))

    @staticmethod
    def _add_to_job(store, job: str, skill: str, files: dict[str, str], skill_rows: list) -> None:
        """Add the files the skill's labeling job lacks, or open the job with them."""
        from modelyard.core.errors import NotFound
        from modelyard.data.labeling.rows import existing_items, job_row

        try:
            with store.engine.connect() as conn:
                present = existing_items(conn, job_row(conn, job).id, list(files))
        except NotFound:
            # a detector's hard frame is labelled with boxes; a classifier's (class probabilities) with a class
            inference = skill_rows[0].inference or {}
            detection = "scores" in inference
            probabilities = inference.get("probabilities") or []
            classes = ["object"] if detection or len(probabilities) < 2 else \
                [f"class-{i}" for i in range(len(probabilities))]
            store.create(job, _System(), task="detection" if detection else "classification", classes=classes,
                         files=files, description=f"Hard examples the skill {skill} found on edge devices "
                                                  "(HiLens-style filters on the device).")
            return
        fresh = {k: v for k, v in files.items() if k not in present}
        if fresh:
            store.add_items(job, _System(), fresh)

    # -- user side --------------------------------------------------------------------------------------------------
    def _device_id(self, conn, ref: str) -> tuple[str, str]:
        from modelyard.core.errors import NotFound

        row = conn.execute(sa.select(edge_devices.c.id, edge_devices.c.name).where(
            sa.or_(edge_devices.c.id == ref, edge_devices.c.name == ref))).first()
        if row is None:
            raise NotFound(f"device {ref} not found")
        return row.id, row.name

    def list(self, device: str, *, channel: str | None = None, skill: str | None = None, offset: int = 0,
             limit: int = 50) -> dict:
        """A page of a device's events, newest first (``modelyard.edge-events/1``), with the count per channel."""
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE} and offset between 0 and {MAX_OFFSET}")
        with self.engine.connect() as conn:
            device_id, name = self._device_id(conn, device)
            where = [edge_events.c.device_id == device_id]
            if channel is not None:
                where.append(edge_events.c.channel == channel)
            if skill is not None:
                where.append(edge_events.c.skill == skill)
            total = conn.execute(sa.select(sa.func.count()).select_from(edge_events).where(*where)).scalar_one()
            rows = conn.execute(sa.select(edge_events).where(*where)
                                .order_by(edge_events.c.at.desc(), edge_events.c.id.desc())
                                .offset(offset).limit(limit)).all()
            per_channel = dict(conn.execute(sa.select(edge_events.c.channel, sa.func.count())
                                            .where(edge_events.c.device_id == device_id)
                                            .group_by(edge_events.c.channel)).all())
        return {"schema": "modelyard.edge-events/1", "device": name, "channel": channel, "skill": skill,
                "total": total, "offset": offset, "limit": limit, "per_channel": per_channel,
                "items": [_event_view(r) for r in rows]}

    def thumbnail(self, event_id: str) -> bytes:
        from modelyard.core.errors import NotFound

        with self.engine.connect() as conn:
            digest = conn.execute(sa.select(edge_events.c.thumbnail).where(edge_events.c.id == event_id)).first()
        if digest is None or digest[0] is None:
            raise NotFound(f"event {event_id} has no thumbnail")
        return self.workspace.blobs.read_bytes(digest[0])

    def hard_examples(self, device: str, *, channel: str | None = None, offset: int = 0, limit: int = 50) -> dict:
        if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= MAX_OFFSET:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE} and offset between 0 and {MAX_OFFSET}")
        with self.engine.connect() as conn:
            device_id, name = self._device_id(conn, device)
            where = [edge_hard_examples.c.device_id == device_id]
            if channel is not None:
                where.append(edge_hard_examples.c.channel == channel)
            total = conn.execute(sa.select(sa.func.count()).select_from(edge_hard_examples)
                                 .where(*where)).scalar_one()
            rows = conn.execute(sa.select(edge_hard_examples).where(*where)
                                .order_by(edge_hard_examples.c.at.desc(), edge_hard_examples.c.id.desc())
                                .offset(offset).limit(limit)).all()
        return {"schema": "modelyard.edge-hard-examples/1", "device": name, "channel": channel, "total": total,
                "offset": offset, "limit": limit,
                "items": [{"id": r.id, "skill": r.skill, "channel": r.channel, "at": isoformat(as_utc(r.at)),
                           "digest": r.digest, "reason": r.reason, "inference": r.inference,
                           "labeling_job": r.labeling_job, "item": r.item} for r in rows]}


def _event_view(row) -> dict:
    return {"id": row.id, "skill": row.skill, "channel": row.channel, "at": isoformat(as_utc(row.at)),
            "pts": row.pts, "event": row.event, "thumbnail": row.thumbnail is not None}
