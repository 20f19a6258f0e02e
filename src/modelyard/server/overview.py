"""What the console's overview shows and ``GET /api/v1/overview`` returns: counts, recent jobs, services with their
health, and what needs attention (failed jobs, running services that are not healthy)."""

from __future__ import annotations

from fastapi import Request

HEALTHY = ("ready", "deploying", "starting")


def overview(request: Request, recent: int = 8) -> dict:
    """The ``modelyard.overview/1`` document (jobs as ``Job`` objects under ``recent_jobs``/``failed_jobs``)."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.deploy.services import ServiceStore
    from modelyard.jobs.queue import JobQueue
    from modelyard.registry.versions import ModelRegistry
    from modelyard.server.routes_services import _view
    from modelyard.train.run_queries import browse_runs
    from modelyard.train.tracking import RunStore

    workspace = request.app.state.workspace
    queue = JobQueue(workspace)
    job_counts = queue.count_by_status()
    recent_jobs, _ = queue.list(limit=recent)
    failed, _ = queue.list(status="failed", limit=5)
    services = [_view(request, s) for s in ServiceStore(workspace).list()]
    _, run_total = browse_runs(RunStore(workspace), limit=1)
    models = ModelRegistry(workspace).list_models()
    attention = [{"what": f"job {j.id} ({j.kind}) failed", "detail": ((j.error or "").strip().splitlines() or [""])[-1],
                  "href": f"/jobs/{j.id}"} for j in failed]
    attention += [{"what": f"service {s['name']} is {s['status']}", "detail": s.get("message") or "",
                   "href": f"/services/{s['name']}"}
                  for s in services if s["state"] == "running" and s["status"] not in HEALTHY]
    return {
        "schema": "modelyard.overview/1",
        "counts": {"datasets": len(DatasetStore(workspace).list()), "runs": run_total, "models": len(models),
                   "model versions": sum(m["versions"] for m in models), "services": len(services),
                   "jobs": sum(job_counts.values())},
        "jobs_by_status": job_counts,
        "recent_jobs": recent_jobs,
        "services": services,
        "attention": attention,
    }
