"""Accepting a migration report: the customer's sign-off, recorded with who, when and the sha256 of the exact
``report.json`` they read, so a report changed afterwards no longer matches its acceptance.

A report whose acceptance checklist failed can still be accepted, but only with a note that says why (a waiver is
a decision someone must own). Each migration job is accepted at most once.

Example::

    record = accept_report(workspace, "job_01...", accepted_by="alice", note="")
    record["report_digest"]  # "sha256:..."
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.store.db import as_utc
from modelyard.store.schema import jobs
from modelyard.store.schema_acceptance import migration_acceptances

SCHEMA = "modelyard.migration-acceptance/1"
MAX_NOTE = 10_000


def _record(row) -> dict:
    return {"schema": SCHEMA, "id": row.id, "job_id": row.job_id, "name": row.name,
            "report_digest": row.report_digest, "checklist_passed": bool(row.checklist_passed), "note": row.note,
            "accepted_by": row.accepted_by, "accepted_at": isoformat(as_utc(row.accepted_at))}


def migration_report(workspace, job_id: str) -> tuple[dict, bytes, dict]:
    """``(job result, report.json bytes, report document)`` of a finished ``migrate.run`` job."""
    with workspace.engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    if row is None:
        raise NotFound(f"job {job_id} not found")
    if row.kind != "migrate.run":
        raise InvalidInput(f"job {job_id} is a {row.kind} job; only migration runs (migrate.run) have a report")
    if row.status != "succeeded":
        raise Conflict(f"job {job_id} is {row.status}; only a finished migration run has a report to accept")
    result = row.result or {}
    path = (result.get("reports") or {}).get("json")
    if not path or not Path(path).is_file():
        raise NotFound(f"job {job_id} has no report.json (was its output folder removed?)")
    data = Path(path).read_bytes()
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise Conflict(f"the report of job {job_id} is not valid JSON: {exc}") from exc
    return result, data, document


def accept_report(workspace, job_id: str, accepted_by: str, note: str = "") -> dict:
    """Record the acceptance of migration job ``job_id``'s report.

    Raises:
        Conflict: the job is not a finished migration, it was already accepted, or its checklist failed and no
            note says why it is accepted anyway.
    """
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note: at most {MAX_NOTE} characters")
    _, data, document = migration_report(workspace, job_id)
    passed = bool(document.get("accepted"))
    if not passed and not note:
        failed = [row.get("goal", "?") for row in document.get("acceptance", []) if row.get("passed") is False]
        raise Conflict(f"the acceptance checklist has failures ({', '.join(map(str, failed)) or 'see the report'}); "
                       "accepting it anyway needs a note that says why")
    row = {"id": new_id("acc"), "job_id": job_id, "name": str(document.get("name", ""))[:200],
           "report_digest": "sha256:" + hashlib.sha256(data).hexdigest(), "checklist_passed": passed, "note": note,
           "accepted_by": accepted_by, "accepted_at": utcnow()}
    try:
        with workspace.engine.begin() as conn:
            conn.execute(migration_acceptances.insert().values(**row))
    except IntegrityError as exc:
        existing = acceptance_of(workspace, job_id)
        raise Conflict(f"job {job_id} was already accepted by {existing['accepted_by'] if existing else '?'}") from exc
    return acceptance_of(workspace, job_id)


def acceptance_of(workspace, job_id: str) -> dict | None:
    """The acceptance of job ``job_id``, or None. ``digest_matches`` says whether report.json is unchanged since."""
    with workspace.engine.connect() as conn:
        row = conn.execute(sa.select(migration_acceptances).where(migration_acceptances.c.job_id == job_id)).first()
    if row is None:
        return None
    record = _record(row)
    try:
        _, data, _ = migration_report(workspace, job_id)
        record["digest_matches"] = "sha256:" + hashlib.sha256(data).hexdigest() == row.report_digest
    except (NotFound, Conflict, InvalidInput):
        record["digest_matches"] = False
    return record


def list_acceptances(workspace, limit: int = 100) -> list[dict]:
    """Acceptances, newest first."""
    with workspace.engine.connect() as conn:
        rows = conn.execute(sa.select(migration_acceptances).order_by(migration_acceptances.c.accepted_at.desc())
                            .limit(max(1, min(limit, 1000)))).all()
    return [_record(r) for r in rows]
