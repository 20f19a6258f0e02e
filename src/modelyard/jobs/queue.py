"""The job queue: every state change of a job is one guarded UPDATE, so concurrent workers, API processes and
job processes cannot overwrite each other (``WHERE status = 'running'`` and friends), on SQLite and PostgreSQL.

States: queued -> running -> succeeded | failed | cancelled; queued -> cancelled; running -> queued (recovery of
an idempotent kind).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError

from modelyard.core import plugins
from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.core.trust import CODE_ROLE, Caller
from modelyard.store.db import as_utc
from modelyard.store.schema import JOB_STATUSES, jobs
from modelyard.store.workspace import Workspace

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
MAX_SPEC_BYTES = 1024 * 1024
MAX_PAGE = 500


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    spec: dict
    status: str
    progress: float
    message: str
    result: dict | None
    error: str | None
    attempts: int
    owner: str
    cancel_requested: bool
    worker: str | None
    pid: int | None
    pid_started: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    log_path: Path = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict:
        return {
            "schema": "modelyard.job/1",
            "id": self.id,
            "kind": self.kind,
            "spec": self.spec,
            "status": self.status,
            "progress": {"fraction": self.progress, "message": self.message},
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "owner": self.owner,
            "cancel_requested": self.cancel_requested,
            "worker": self.worker,
            "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at),
            "finished_at": isoformat(self.finished_at),
            "heartbeat_at": isoformat(self.heartbeat_at),
        }


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "spec"
        parts.append(f"spec.{where}: {error['msg']}")
    return "; ".join(parts)


class JobQueue:
    """Job rows of one workspace. Constructing it does no I/O."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine

    # -- paths --------------------------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        return self.workspace.settings.jobs_dir / job_id

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "log.txt"

    def _job(self, row) -> Job:
        return Job(
            id=row.id,
            kind=row.kind,
            spec=row.spec,
            status=row.status,
            progress=float(row.progress),
            message=row.message,
            result=row.result,
            error=row.error,
            attempts=row.attempts,
            owner=row.owner,
            cancel_requested=bool(row.cancel_requested),
            worker=row.worker,
            pid=row.pid,
            pid_started=row.pid_started,
            created_at=as_utc(row.created_at),
            started_at=as_utc(row.started_at),
            finished_at=as_utc(row.finished_at),
            heartbeat_at=as_utc(row.heartbeat_at),
            log_path=self.log_path(row.id),
        )

    # -- submit / read ------------------------------------------------------------------------------------------
    def submit(self, kind: str, spec: dict | None = None, owner: str = "", caller: Caller | None = None) -> Job:
        """Validate ``spec`` against the kind's model and queue the job.

        Args:
            caller: who asks (the API passes the token's name and role): the kind's ``authorize`` refuses code and
                server paths the role may not use. ``None`` is a trusted in-process library call (code that holds
                the workspace already has the server's rights).
        """
        if not isinstance(kind, str) or not kind:
            raise InvalidInput("kind: must be a non-empty string")
        job_kind = plugins.load_job_kind(kind)
        if spec is not None and not isinstance(spec, dict):
            raise InvalidInput("spec: must be a JSON object")
        try:
            validated = job_kind.validate_spec(spec)
        except ValidationError as exc:
            raise InvalidInput(_validation_message(exc), code="invalid_spec") from exc
        if job_kind.authorize is not None:
            job_kind.authorize(validated, caller or Caller(owner or "library", CODE_ROLE), self.workspace)
        spec_json = validated.model_dump(mode="json")
        from modelyard.core.jsonsafe import check_finite

        check_finite(spec_json, "spec")  # a stored NaN would make every later read of the job fail
        if len(json.dumps(spec_json)) > MAX_SPEC_BYTES:
            raise InvalidInput(f"spec: larger than {MAX_SPEC_BYTES} bytes")
        job_id = new_id("job")
        self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        self.log_path(job_id).touch()
        with self.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id, kind=kind, spec=spec_json, status="queued", owner=owner, created_at=utcnow()
                )
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        return self._job(row)

    def list(
        self,
        status: str | None = None,
        kind: str | None = None,
        owner: str | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first. Returns a page and the cursor for the next page (``before=``), or None at the end."""
        if status is not None and status not in JOB_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)}, not {status!r}")
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit + 1)
        if status:
            query = query.where(jobs.c.status == status)
        if kind:
            query = query.where(jobs.c.kind == kind)
        if owner:
            query = query.where(jobs.c.owner == owner)
        if before:
            query = query.where(jobs.c.id < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        items = [self._job(row) for row in rows[:limit]]
        cursor = items[-1].id if len(rows) > limit else None
        return items, cursor

    def browse(self, status: str | None = None, kind: str | None = None, owner: str | None = None,
               search: str | None = None, sort: str = "created", desc: bool = True, offset: int = 0,
               limit: int = 50) -> tuple[list[Job], int]:
        """A page of jobs by offset with any sort, and the number of jobs that match (console and ``GET /jobs``
        with ``offset``). ``search`` matches the start of the id or part of the kind."""
        from modelyard.store.listing import fetch_page, ordered

        if status is not None and status not in JOB_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)}, not {status!r}")
        columns = {"created": jobs.c.id, "kind": jobs.c.kind, "status": jobs.c.status, "owner": jobs.c.owner,
                   "progress": jobs.c.progress, "finished": jobs.c.finished_at}
        if sort not in columns:
            raise InvalidInput(f"sort must be one of {', '.join(columns)}, not {sort!r}")
        query = sa.select(jobs)
        for column, value in ((jobs.c.status, status), (jobs.c.kind, kind), (jobs.c.owner, owner)):
            if value:
                query = query.where(column == value)
        if search:
            query = query.where(sa.or_(jobs.c.id.startswith(search, autoescape=True),
                                       jobs.c.kind.contains(search, autoescape=True)))
        rows, total = fetch_page(self.engine, query, [ordered(columns[sort], desc), jobs.c.id.desc()], offset, limit)
        return [self._job(row) for row in rows], total

    def count_by_status(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        counts = dict.fromkeys(JOB_STATUSES, 0)
        counts.update({status: n for status, n in rows})
        return counts

    def read_log(self, job_id: str, offset: int = 0, limit: int = 1024 * 1024) -> tuple[bytes, int]:
        """Bytes of the job's log from ``offset`` (at most ``limit``) and the offset after them."""
        self.get(job_id)
        if offset < 0:
            raise InvalidInput("offset must be >= 0")
        path = self.log_path(job_id)
        if not path.exists():
            return b"", offset
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(limit)
        return data, offset + len(data)

    # -- transitions --------------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask the worker to stop a running one. 409 for a finished job."""
        job = self.get(job_id)
        if job.done:
            raise Conflict(f"job {job_id} has already finished ({job.status})")
        with self.engine.begin() as conn:
            changed = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "queued")
                .values(status="cancelled", finished_at=utcnow(), message="cancelled before it started")
            ).rowcount
            if not changed:
                changed = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.status == "running")
                    .values(cancel_requested=True, message="cancelling")
                ).rowcount
        job = self.get(job_id)
        if not changed:
            raise Conflict(f"job {job_id} has already finished ({job.status})")
        return job

    def claim(self, worker: str, limit: int) -> list[Job]:
        """Move up to ``limit`` queued jobs, oldest first, to running for ``worker``.

        Compare-and-set per row: two workers claiming at once never get the same job.
        """
        if limit <= 0:
            return []
        with self.engine.connect() as conn:
            candidates = conn.execute(
                sa.select(jobs.c.id).where(jobs.c.status == "queued").order_by(jobs.c.id).limit(limit)
            ).scalars().all()
        claimed = []
        for job_id in candidates:
            now = utcnow()
            with self.engine.begin() as conn:
                won = conn.execute(
                    jobs.update()
                    .where(jobs.c.id == job_id, jobs.c.status == "queued")
                    .values(
                        status="running",
                        worker=worker,
                        started_at=now,
                        heartbeat_at=now,
                        attempts=jobs.c.attempts + 1,
                        message="starting",
                        progress=0.0,
                        pid=None,
                        pid_started=None,
                    )
                ).rowcount
            if won:
                claimed.append(self.get(job_id))
        return claimed

    def set_process(self, job_id: str, pid: int, pid_started: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running").values(
                    pid=pid, pid_started=pid_started
                )
            )

    def heartbeat(self, job_ids: list[str], worker: str) -> list[str]:
        """Mark running jobs alive; returns those among them whose cancellation was requested."""
        if not job_ids:
            return []
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id.in_(job_ids), jobs.c.status == "running", jobs.c.worker == worker)
                .values(heartbeat_at=utcnow())
            )
            return list(
                conn.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.id.in_(job_ids), jobs.c.status == "running", jobs.c.cancel_requested.is_(True)
                    )
                ).scalars()
            )

    def report_progress(self, job_id: str, fraction: float, message: str = "") -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status == "running")
                .values(progress=fraction, message=message[:2000])
            )

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: dict | None = None,
        error: str | None = None,
        message: str | None = None,
        worker: str | None = None,
    ) -> bool:
        """Move a running job to a terminal state; False when it was no longer running (someone else won)."""
        if status not in TERMINAL:
            raise ValueError(f"not a terminal status: {status}")
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), "result": result, "error": error}
        if status == "succeeded":
            values["progress"] = 1.0
        if message is not None:
            values["message"] = message[:2000]
        query = jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running")
        if worker is not None:
            query = query.where(jobs.c.worker == worker)
        with self.engine.begin() as conn:
            return bool(conn.execute(query.values(**values)).rowcount)

    def requeue(self, job_id: str, reason: str, worker: str | None = None) -> bool:
        query = jobs.update().where(jobs.c.id == job_id, jobs.c.status == "running")
        if worker is not None:
            query = query.where(jobs.c.worker == worker)
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    query.values(
                        status="queued", worker=None, pid=None, pid_started=None, heartbeat_at=None,
                        started_at=None, progress=0.0, message=reason[:2000], cancel_requested=False,
                    )
                ).rowcount
            )

    def running(self, worker: str | None = None) -> list[Job]:
        query = sa.select(jobs).where(jobs.c.status == "running").order_by(jobs.c.id)
        if worker is not None:
            query = query.where(jobs.c.worker == worker)
        with self.engine.connect() as conn:
            return [self._job(row) for row in conn.execute(query)]

    def stale_running(self, stale_after: timedelta) -> list[Job]:
        cutoff = utcnow() - stale_after
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs).where(
                    jobs.c.status == "running",
                    sa.or_(jobs.c.heartbeat_at.is_(None), jobs.c.heartbeat_at < cutoff),
                )
            ).all()
        return [self._job(row) for row in rows]
