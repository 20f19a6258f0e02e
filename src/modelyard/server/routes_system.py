"""Health checks (``/healthz``, ``/readyz``: no token, like a service replica's) and version."""

from __future__ import annotations

import platform

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from modelyard.core.version import __version__
from modelyard.server.auth import Principal, require
from modelyard.server.responses import AUTH_ERRORS, Health, Overview, Unhealthy, VersionInfo, documented

router = APIRouter()
_HEALTH = {**documented(Health), 503: {"model": Unhealthy, "description": "The database does not answer."}}


@router.get("/healthz", tags=["system"], responses=_HEALTH)
def healthz(request: Request):
    """Liveness and database reachability. Needs no token."""
    return _health(request, "ok")


@router.get("/readyz", tags=["system"], responses=_HEALTH)
def readyz(request: Request):
    """Ready to serve requests (the database answers). Needs no token: a load balancer's probe, as on a replica."""
    return _health(request, "ready")


def _health(request: Request, status: str):
    try:
        with request.app.state.workspace.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        return JSONResponse({"status": "unhealthy", "reason": f"database: {exc.__class__.__name__}"}, 503)
    return {"status": status, "version": __version__}


@router.get("/api/v1/overview", tags=["system"], responses=documented(Overview, *AUTH_ERRORS))
def overview(request: Request, _: Principal = Depends(require("viewer"))):
    """Counts, recent jobs, services and their health, and what needs attention (the console's overview)."""
    from modelyard.server.overview import overview as build

    data = build(request)
    data["recent_jobs"] = [job.to_dict() for job in data["recent_jobs"]]
    return data


@router.get("/api/v1/version", tags=["system"], responses=documented(VersionInfo, *AUTH_ERRORS))
def version(request: Request, principal: Principal = Depends(require("viewer"))):
    return {
        "schema": "modelyard.version/1",
        "version": __version__,
        "api": "v1",
        "database": request.app.state.workspace.engine.dialect.name,
        "python": platform.python_version(),
        "you": {"name": principal.name, "role": principal.role},
    }
