"""Migration reports: read a finished migration run's report and record its acceptance (who, when, digest)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import NotFound
from modelyard.server.auth import Principal, require
from modelyard.server.responses import MigrationAcceptance, MigrationAcceptanceList, MigrationReport, documented

router = APIRouter(tags=["migrations"])


class Accept(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=10_000,
                      description="why the report is accepted; required when its acceptance checklist failed")


@router.get("/migrations/{job_id}/report", responses=documented(MigrationReport, 404, 409, 422))
def migration_report(job_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The ``modelyard.migration-report/1`` document a ``migrate.run`` job wrote."""
    from modelyard.migrate.pipeline.acceptance import migration_report as read

    return read(request.app.state.workspace, job_id)[2]


@router.post("/migrations/{job_id}/accept", status_code=201,
             responses=documented(MigrationAcceptance, 404, 409, 422, status=201))
def accept(job_id: str, body: Accept, request: Request, principal: Principal = Depends(require("editor"))):
    """Accept the report of migration run ``job_id``: records who, when and the report's sha256."""
    from modelyard.migrate.pipeline.acceptance import accept_report

    return accept_report(request.app.state.workspace, job_id, principal.name, body.note)


@router.get("/migrations/{job_id}/acceptance", responses=documented(MigrationAcceptance, 404, 422))
def acceptance(job_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    from modelyard.migrate.pipeline.acceptance import acceptance_of

    found = acceptance_of(request.app.state.workspace, job_id)
    if found is None:
        raise NotFound(f"the report of job {job_id} has not been accepted")
    return found


@router.get("/migration-acceptances", responses=documented(MigrationAcceptanceList, 422))
def acceptances(request: Request, limit: int = Query(100, ge=1, le=1000), _: Principal = Depends(require("viewer"))):
    from modelyard.migrate.pipeline.acceptance import list_acceptances

    return {"schema": "modelyard.migration-acceptance-list/1",
            "items": list_acceptances(request.app.state.workspace, limit)}
