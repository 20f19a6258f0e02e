"""Jobs: submit, list (filters, paging), get, logs (with follow), cancel; and the registered kinds."""

from __future__ import annotations

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

router = APIRouter(tags=["jobs"])
FOLLOW_POLL_S = 0.25
FOLLOW_MAX_S = 6 * 3600


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=100, description="A registered job kind, e.g. blob.verify")
    spec: dict[str, Any] = Field(default_factory=dict, description="The kind's spec (see GET /job-kinds)")


def _queue(request: Request) -> JobQueue:
    return JobQueue(request.app.state.workspace)


@router.post("/jobs", status_code=201)
def submit_job(body: SubmitJob, request: Request, principal: Principal = Depends(require("editor"))):
    """Queue a job. Specs are untrusted: code outside the built-in zoo and paths on the server need the admin
    role (403 otherwise); files travel as uploaded blobs named in the spec's ``files``."""
    caller = Caller(principal.name, principal.role)
    return _queue(request).submit(body.kind, body.spec, owner=principal.name, caller=caller).to_dict()


@router.get("/jobs")
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


@router.get("/job-kinds")
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


@router.get("/jobs/{job_id}")
def get_job(job_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    return _queue(request).get(job_id).to_dict()


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: str, request: Request, _: Principal = Depends(require("editor"))):
    return _queue(request).cancel(job_id).to_dict()


@router.get("/jobs/{job_id}/logs", response_class=Response)
def job_logs(
    job_id: str,
    request: Request,
    offset: int = Query(0, ge=0),
    follow: bool = Query(False, description="keep the response open and stream new lines until the job ends"),
    _: Principal = Depends(require("viewer")),
):
    """The job's log as text from byte ``offset``. ``X-Log-Offset`` is where the next read starts;
    ``X-Job-Status`` the job's status at the time of reading."""
    queue = _queue(request)
    if not follow:
        data, next_offset = queue.read_log(job_id, offset)
        status = queue.get(job_id).status
        return Response(
            data, media_type="text/plain; charset=utf-8",
            headers={"X-Log-Offset": str(next_offset), "X-Job-Status": status},
        )
    queue.get(job_id)

    def stream():
        position = offset
        deadline = time.monotonic() + FOLLOW_MAX_S
        while time.monotonic() < deadline:
            done = queue.get(job_id).done
            data, position = queue.read_log(job_id, position)
            if data:
                yield data
            elif done:
                return
            else:
                time.sleep(FOLLOW_POLL_S)

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")
