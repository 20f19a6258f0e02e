"""Jobs: submit, list (filters, paging), get, logs (with follow), cancel; and the registered kinds."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core import plugins
from modelyard.core.errors import ModelyardError
from modelyard.core.trust import Caller
from modelyard.jobs.queue import JobQueue
from modelyard.server.auth import Principal, require
from modelyard.server.responses import Job, JobKinds, JobList, documented

router = APIRouter(tags=["jobs"])
FOLLOW_POLL_S = 0.25
FOLLOW_MAX_S = 6 * 3600
FOLLOW_STREAMS_PER_TOKEN = 8  # open ?follow=true streams one token may hold at once
_FOLLOW_LOCK = threading.Lock()


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=100, description="A registered job kind, e.g. blob.verify")
    spec: dict[str, Any] = Field(default_factory=dict, description="The kind's spec (see GET /job-kinds)")


def _queue(request: Request) -> JobQueue:
    return JobQueue(request.app.state.workspace)


@router.post("/jobs", status_code=201, responses=documented(Job, 413, 422, status=201))
def submit_job(body: SubmitJob, request: Request, principal: Principal = Depends(require("editor"))):
    """Queue a job. Specs are untrusted: code outside the built-in zoo and paths on the server need the admin
    role (403 otherwise); files travel as uploaded blobs named in the spec's ``files``."""
    caller = Caller(principal.name, principal.role)
    return _queue(request).submit(body.kind, body.spec, owner=principal.name, caller=caller).to_dict()


@router.get("/jobs", responses=documented(JobList, 422))
def list_jobs(
    request: Request,
    status: str | None = None,
    kind: str | None = None,
    owner: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    before: str | None = Query(None, description="cursor: the 'next' value of the previous page"),
    _: Principal = Depends(require("viewer")),
):
    items, cursor = _queue(request).list(status=status, kind=kind, owner=owner, limit=limit, before=before)
    return {"schema": "modelyard.job-list/1", "items": [job.to_dict() for job in items], "next": cursor}


@router.get("/job-kinds", responses=documented(JobKinds))
def job_kinds(_: Principal = Depends(require("viewer"))):
    kinds = []
    for name, target in sorted(plugins.job_kind_targets().items()):
        try:
            kind = plugins.load_job_kind(name)
            kinds.append(
                {"name": name, "description": kind.description, "idempotent": kind.idempotent,
                 "spec_schema": kind.spec_model.model_json_schema(), "available": True}
            )
        except ModelyardError as exc:
            kinds.append({"name": name, "target": target, "available": False, "reason": str(exc)})
    return {"schema": "modelyard.job-kinds/1", "items": kinds}


@router.get("/jobs/{job_id}", responses=documented(Job, 404))
def get_job(job_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    return _queue(request).get(job_id).to_dict()


@router.post("/jobs/{job_id}/cancel", responses=documented(Job, 404, 409))
def cancel_job(job_id: str, request: Request, _: Principal = Depends(require("editor"))):
    return _queue(request).cancel(job_id).to_dict()


@router.get("/jobs/{job_id}/logs", response_class=Response,
            responses=documented(None, 404, 422, 429, media_type="text/plain", description="The log text."))
def job_logs(
    job_id: str,
    request: Request,
    offset: int = Query(0, ge=0, le=2**62),
    follow: bool = Query(False, description="keep the response open and stream new lines until the job ends"),
    principal: Principal = Depends(require("viewer")),
):
    """The job's log as text from byte ``offset``. ``X-Log-Offset`` is where the next read starts;
    ``X-Job-Status`` the job's status at the time of reading. A token may hold 8 ``follow=true`` streams at once
    (429 beyond)."""
    queue = _queue(request)
    if not follow:
        data, next_offset = queue.read_log(job_id, offset)
        status = queue.get(job_id).status
        return Response(
            data, media_type="text/plain; charset=utf-8",
            headers={"X-Log-Offset": str(next_offset), "X-Job-Status": status},
        )
    queue.get(job_id)
    release = _take_follow_slot(request.app, principal)

    async def stream():
        # NOTE: async, polling through the thread pool only for the two reads: a sleeping follower must not hold
        # one of the pool's 40 threads (45 followers used to hang the whole API)
        from starlette.concurrency import run_in_threadpool

        try:
            position = offset
            deadline = time.monotonic() + FOLLOW_MAX_S
            while time.monotonic() < deadline:
                done = (await run_in_threadpool(queue.get, job_id)).done
                data, position = await run_in_threadpool(queue.read_log, job_id, position)
                if data:
                    yield data
                elif done:
                    return
                else:
                    await asyncio.sleep(FOLLOW_POLL_S)
        finally:
            release()

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")


def _take_follow_slot(app, principal: Principal):
    """Count one more follow stream for the caller's token, or refuse with 429; returns the release function."""
    holder = principal.token_id or principal.name
    with _FOLLOW_LOCK:
        open_streams = _follow_counts(app)
        if open_streams.get(holder, 0) >= FOLLOW_STREAMS_PER_TOKEN:
            raise ModelyardError(f"token '{principal.name}' already follows {FOLLOW_STREAMS_PER_TOKEN} job logs; "
                                 "close one (or read without follow=true)", code="too_many_requests", status=429)
        open_streams[holder] = open_streams.get(holder, 0) + 1
    released = []

    def release() -> None:
        with _FOLLOW_LOCK:
            if not released:
                released.append(True)
                open_streams[holder] -= 1
                if not open_streams[holder]:
                    del open_streams[holder]

    return release


def _follow_counts(app) -> dict[str, int]:
    counts = getattr(app.state, "follow_streams", None)
    if counts is None:
        counts = app.state.follow_streams = {}
    return counts
