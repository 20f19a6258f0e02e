"""Garbage collection of the blob store, and pins that keep blobs alive.

Deleting a dataset version, a model version or a run removes rows only: blobs are content-addressed and shared
(two versions of a dataset hold mostly the same images), so they are freed here, by mark and sweep:

* **mark**: every digest that a live row refers to. Rather than a list of known fields, every JSON column and
  every ``*digest`` column of every table is searched for ``sha256`` digests, so a table added later is covered
  without touching this file. Dataset manifests (blobs themselves) are searched too. Jobs count while queued or
  running (their specs name their inputs) and for as long as their rows exist for their results (outputs a user
  may still fetch). Pinned digests (``blob_pins``) count always.
* **sweep**: every stored blob that is not marked and was last written more than the grace period ago
  (setting ``blob_gc_grace_s``, default a day) is deleted. Storing content that already exists refreshes the
  blob's time (``BlobStore.put_stream``), so an upload or import still running, whose rows are not written yet,
  keeps what it stored.
* **upload sessions**: the partial files of chunked uploads (``blobs/uploads``) untouched for longer than the grace
  period are abandoned (every chunk appended refreshes the file's time) and are deleted with their owner records;
  so are temporary files of single-request uploads that died halfway (``blobs/tmp``). Both count as
  ``stale_temporary_files``.

Deleting needs the ``admin`` role through the API; a dry run lists what would go and deletes nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from modelyard.core.errors import IntegrityError, NotFound
from modelyard.core.ids import isoformat, utcnow
from modelyard.store.db import as_utc, full_metadata
from modelyard.store.schema_blobs import blob_pins

_DIGEST = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")
ACTIVE_JOB_STATUSES = ("queued", "running")
MAX_LISTED = 1000


def digests_in(value) -> Iterator[str]:
    """Every sha256 digest (bare hex, ``sha256:`` prefixed or not) anywhere inside a JSON-like value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            match = _DIGEST.match(item)
            if match:
                yield match.group(1)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _reference_columns(table: sa.Table) -> list[sa.Column]:
    return [c for c in table.columns if isinstance(c.type, sa.JSON) or c.name.endswith("digest")]


def referenced_digests(engine: sa.Engine, blobs) -> set[str]:
    """The mark phase: digests that live rows, active jobs, job results, dataset manifests and pins refer to."""
    metadata = full_metadata()
    marked: set[str] = set()
    manifests: set[str] = set()
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = _reference_columns(table)
            if not columns:
                continue
            if table.name == "jobs":
                for spec, result, status in conn.execute(sa.select(table.c.spec, table.c.result, table.c.status)):
                    if status in ACTIVE_JOB_STATUSES:
                        marked.update(digests_in(spec))
                    marked.update(digests_in(result))
                continue
            for row in conn.execute(sa.select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    found = set(digests_in(value))
                    marked.update(found)
                    if table.name == "dataset_versions" and column.name == "manifest_digest":
                        manifests.update(found)
    for digest in manifests:  # a manifest lists its files' digests
        if not blobs.exists(digest):
            # without it, the version's files would look unreferenced: refuse rather than delete them
            raise IntegrityError(f"dataset manifest sha256:{digest} is missing from the blob store; nothing was "
                                 "collected (run the blob.verify job, then delete the broken version)")
        marked.update(digests_in(json.loads(blobs.read_bytes(digest))))
    return marked


@dataclass(frozen=True)
class GcResult:
    """What one collection did (or, with ``dry_run``, would do)."""

    dry_run: bool
    grace_s: float
    deleted: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_referenced: int = 0
    kept_recent: int = 0
    stale_temporary_files: int = 0

    def to_dict(self) -> dict:
        return {"schema": "modelyard.blob-gc/1", "dry_run": self.dry_run, "grace_s": self.grace_s,
                "deleted": len(self.deleted), "freed_bytes": self.freed_bytes,
                "digests": ["sha256:" + d for d in self.deleted[:MAX_LISTED]],
                "kept_referenced": self.kept_referenced, "kept_recent": self.kept_recent,
                "stale_temporary_files": self.stale_temporary_files}

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (f"{verb} {len(self.deleted)} blob(s), {self.freed_bytes} bytes; kept {self.kept_referenced} in use "
                f"or pinned and {self.kept_recent} younger than {self.grace_s:g} s")


def collect_garbage(workspace, dry_run: bool = True, grace_s: float | None = None) -> GcResult:
    """Delete (or with ``dry_run`` only list) blobs nothing refers to that are older than ``grace_s`` seconds
    (default: the workspace's ``blob_gc_grace_s``)."""
    from modelyard.core.errors import InvalidInput

    grace = workspace.settings.blob_gc_grace_s if grace_s is None else float(grace_s)
    if grace < 0:
        raise InvalidInput(f"grace_s {grace}: must not be negative")
    blobs = workspace.blobs
    marked = referenced_digests(workspace.engine, blobs)
    cutoff = time.time() - grace
    deleted, freed, referenced, recent = [], 0, 0, 0
    for digest in blobs.iter_digests():
        if digest in marked:
            referenced += 1
            continue
        info = blobs.stat(digest)
        if info is None:
            continue
        if info.mtime > cutoff:
            recent += 1
            continue
        if not dry_run:
            blobs.delete(digest)
        deleted.append(digest)
        freed += info.size
    stale = _sweep_temporary(blobs.root / "tmp", cutoff, dry_run) + _sweep_upload_sessions(blobs.root / "uploads",
                                                                                         cutoff, dry_run)
    return GcResult(dry_run=dry_run, grace_s=grace, deleted=deleted, freed_bytes=freed, kept_referenced=referenced,
                    kept_recent=recent, stale_temporary_files=stale)


def _sweep_temporary(staging, cutoff: float, dry_run: bool) -> int:
    """Uploads that died halfway (a killed process) leave their temporary files: count (and delete) the old ones."""
    stale = 0
    if staging.is_dir():
        for leftover in staging.iterdir():
            try:
                if leftover.is_file() and leftover.stat().st_mtime <= cutoff:
                    stale += 1
                    if not dry_run:
                        os.unlink(leftover)
            except FileNotFoundError:
                continue
    return stale


def _sweep_upload_sessions(folder, cutoff: float, dry_run: bool) -> int:
    """Chunked upload sessions (``upl_<hex>`` plus its ``.owner`` record) last appended to before ``cutoff``: one
    each, however many files it holds. An owner record whose session file is gone (a crash between the two
    writes) goes too."""
    stale = 0
    if not folder.is_dir():
        return 0
    for leftover in folder.iterdir():
        try:
            if not leftover.is_file() or leftover.stat().st_mtime > cutoff:
                continue
            if leftover.suffix == ".owner":
                if leftover.with_suffix("").exists():
                    continue  # judged by its session file, whose time each chunk refreshes
                if not dry_run:
                    os.unlink(leftover)
                continue
            stale += 1
            if not dry_run:
                os.unlink(leftover)
                leftover.with_suffix(".owner").unlink(missing_ok=True)
        except FileNotFoundError:
            continue
    return stale


# -- pins ---------------------------------------------------------------------------------------------------------
def pin(workspace, digest: str, note: str = "", created_by: str = "") -> dict:
    """Keep a stored blob through garbage collection (idempotent: pinning again updates the note)."""
    from modelyard.core.errors import InvalidInput

    info = workspace.blobs.info(digest)
    if len(note) > 1000:
        raise InvalidInput("note: at most 1000 characters")
    with workspace.engine.begin() as conn:
        updated = conn.execute(blob_pins.update().where(blob_pins.c.digest == info.digest).values(note=note))
        if not updated.rowcount:
            try:
                with conn.begin_nested():
                    conn.execute(blob_pins.insert().values(digest=info.digest, note=note, created_by=created_by,
                                                           created_at=utcnow()))
            except sa.exc.IntegrityError:  # pinned by someone else at the same moment
                pass
    return pin_info(workspace, info.digest)


def pin_info(workspace, digest: str) -> dict:
    hexdigest = workspace.blobs.normalize(digest)
    with workspace.engine.connect() as conn:
        row = conn.execute(sa.select(blob_pins).where(blob_pins.c.digest == hexdigest)).first()
    if row is None:
        raise NotFound(f"blob sha256:{hexdigest} is not pinned")
    return _pin_dict(row, workspace.blobs)


def unpin(workspace, digest: str, by: str | None = None) -> None:
    """Remove a pin. With ``by`` (the caller's token name; ``None`` for an admin) only the pin's creator may:
    otherwise any editor could let another user's kept blob be collected."""
    from modelyard.core.errors import Forbidden

    hexdigest = workspace.blobs.normalize(digest)
    with workspace.engine.begin() as conn:
        creator = conn.execute(sa.select(blob_pins.c.created_by).where(blob_pins.c.digest == hexdigest)).scalar()
        if creator is None:
            raise NotFound(f"blob sha256:{hexdigest} is not pinned")
        if by is not None and creator != by:
            raise Forbidden(f"blob sha256:{hexdigest} was pinned by {creator!r}; only they or an admin may unpin it")
        gone = conn.execute(blob_pins.delete().where(blob_pins.c.digest == hexdigest,
                                                     blob_pins.c.created_by == creator))
    if not gone.rowcount:
        raise NotFound(f"blob sha256:{hexdigest} is not pinned")


def list_pins(workspace) -> list[dict]:
    with workspace.engine.connect() as conn:
        rows = conn.execute(sa.select(blob_pins).order_by(blob_pins.c.created_at)).all()
    return [_pin_dict(row, workspace.blobs) for row in rows]


def _pin_dict(row, blobs) -> dict:
    info = blobs.stat(row.digest)
    return {"digest": "sha256:" + row.digest, "note": row.note, "created_by": row.created_by,
            "created_at": isoformat(as_utc(row.created_at)),
            "size": info.size if info is not None else None}


# -- in use -------------------------------------------------------------------------------------------------------
def active_jobs_naming(engine: sa.Engine, names: set[str]) -> list[str]:
    """Ids of queued or running jobs whose spec holds any of ``names`` as a text value (e.g. ``"digits@1"``)."""
    from modelyard.store.schema import jobs

    with engine.connect() as conn:
        rows = conn.execute(sa.select(jobs.c.id, jobs.c.spec).where(jobs.c.status.in_(ACTIVE_JOB_STATUSES))).all()

    def strings(value) -> Iterator[str]:
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list | tuple):
                stack.extend(item)

    return sorted(job_id for job_id, spec in rows if names & set(strings(spec)))
