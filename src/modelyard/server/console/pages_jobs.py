"""Jobs: the list (filters, sort, paging), one job with its spec, live progress and log tail (htmx polling), cancel.
REST twins: ``GET /api/v1/jobs``, ``GET /api/v1/jobs/{id}``, ``GET .../logs``, ``POST .../cancel``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from modelyard.server.console.web import Paging, Viewer, action, page, redirect, refresh, render
from modelyard.store.schema import JOB_STATUSES

router = APIRouter()
LOG_TAIL_BYTES = 64 * 1024


def _queue(request: Request):
    from modelyard.jobs.queue import JobQueue

    return JobQueue(request.app.state.workspace)


@router.get("/jobs")
def jobs_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.core import plugins

    paging = Paging.from_request(request, ("created", "kind", "status", "owner", "progress", "finished"), "created")
    query = request.query_params
    filters = {"status": query.get("status") or None, "kind": query.get("kind") or None,
               "owner": query.get("owner") or None, "search": query.get("q") or None}
    if filters["status"] not in (None, *JOB_STATUSES):
        filters["status"] = None
    items, total = _queue(request).browse(**filters, sort=paging.sort, desc=paging.desc, offset=paging.offset,
                                          limit=paging.per)
    return render(request, "jobs.html", viewer, title="Jobs", recent=items, total=total, paging=paging,
                  filters=filters, statuses=JOB_STATUSES, kinds=sorted(plugins.job_kind_targets()))


def _log_tail(queue, job) -> tuple[str, bool]:
    size = job.log_path.stat().st_size if job.log_path.exists() else 0
    start = max(0, size - LOG_TAIL_BYTES)
    data, _ = queue.read_log(job.id, start, LOG_TAIL_BYTES)
    return data.decode("utf-8", errors="replace"), start > 0


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str, viewer: Viewer = Depends(page())):
    import json

    queue = _queue(request)
    job = queue.get(job_id)
    log, cut = _log_tail(queue, job)
    return render(request, "job.html", viewer, title=f"Job {job.id}", nav="jobs", job=job, log=log, cut=cut,
                  spec=json.dumps(job.spec, indent=2), result=json.dumps(job.result, indent=2) if job.result else "")


@router.get("/jobs/{job_id}/live")
def job_live(request: Request, job_id: str, viewer: Viewer = Depends(page())):
    """The fragment htmx polls while the job runs: status, progress and the log's tail."""
    queue = _queue(request)
    job = queue.get(job_id)
    log, cut = _log_tail(queue, job)
    response = render(request, "job_live.html", viewer, job=job, log=log, cut=cut)
    if job.done:
        # the page reloads once to show the result; the reloaded fragment has no trigger left, so polling stops
        refresh(request, response)
    return response


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: str, _: Viewer = Depends(action("editor"))):
    job = _queue(request).cancel(job_id)
    return redirect(f"/jobs/{job.id}", f"Cancellation requested for {job.id}.")
