"""Tracked runs: create, list, show (with metric history), log params/metrics/lines, attach artifacts, finish,
compare."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.ids import MAX_STORED_INT
from modelyard.server.auth import Principal, require
from modelyard.server.responses import (
    MetricSeries,
    Run,
    RunCompare,
    RunDeleted,
    RunGroups,
    RunList,
    RunLogs,
    RunWithHistory,
    Stored,
    documented,
)

router = APIRouter(tags=["runs"])


class CreateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    experiment: str = Field(default="default", min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = Field(default=None, description="The dataset version trained on, NAME@VERSION.")
    job_id: str | None = None


class MetricPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=200)
    value: float = Field(description='A number, or one of the strings "NaN", "Infinity", "-Infinity" (JSON has no '
                                     'literal for those; they are stored and read back as such).')
    step: int | None = Field(default=None, ge=0)


class LogMetrics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: list[MetricPoint] = Field(max_length=10_000)


class LogParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any]


class LogLines(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[str] = Field(max_length=10_000)


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=500)
    digest: str


class Finish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["finished", "failed", "killed"] = "finished"
    error: str | None = Field(default=None, max_length=100_000)


def _runs(request: Request):
    from modelyard.train.tracking import RunStore

    return RunStore(request.app.state.workspace)


@router.post("/runs", status_code=201, responses=documented(Run, 413, 422, status=201))
def create_run(body: CreateRun, request: Request, principal: Principal = Depends(require("editor"))):
    return _runs(request).create(body.name, body.experiment, body.params, body.tags, body.dataset, body.job_id,
                                 created_by=principal.name).to_dict()


@router.get("/runs", responses=documented(RunList, 422))
def list_runs(
    request: Request,
    experiment: str | None = None,
    status: str | None = None,
    dataset: str | None = None,
    name: str | None = None,
    q: str | None = Query(None, description="part of the run's name"),
    sort: str = Query("started", description="started, name, status, experiment, ended, metric:KEY or param:KEY"),
    order: Literal["asc", "desc"] = "desc",
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=1000),
    _: Principal = Depends(require("viewer")),
):
    from modelyard.train.run_queries import browse_runs

    if name is not None:
        items = _runs(request).list(experiment=experiment, status=status, dataset=dataset, name=name, limit=limit)
        return {"schema": "modelyard.run-list/1", "items": [r.to_dict() for r in items]}
    items, total = browse_runs(_runs(request), experiment=experiment, status=status, search=q, dataset=dataset,
                               sort=sort, desc=order == "desc", offset=offset, limit=limit)
    return {"schema": "modelyard.run-list/1", "items": [r.to_dict() for r in items], "total": total}


@router.get("/runs-groups", responses=documented(RunGroups, 422))
def group_runs(request: Request, param: str, metric: str, experiment: str | None = None,
               status: str | None = "finished", _: Principal = Depends(require("viewer"))):
    """Runs grouped by a parameter's value: mean, std, min and max of a metric per group (e.g. across seeds)."""
    from modelyard.core.jsonsafe import encode_float
    from modelyard.train.run_queries import group_runs as group

    data = group(_runs(request), param, metric, experiment, status or None)
    # a group with a NaN or infinite metric has non-finite statistics: strings, as everywhere in the API
    data["groups"] = [{**g, **{k: encode_float(g[k]) for k in ("mean", "std", "min", "max")}} for g in data["groups"]]
    return data


@router.get("/runs/{run_id}/series/{key}", responses=documented(MetricSeries, 404, 422))
def metric_series(run_id: str, key: str, request: Request, max_points: int = Query(1000, ge=10, le=5000),
                  _: Principal = Depends(require("viewer"))):
    """One metric's history, reduced server-side to at most ``max_points`` (min and max per step bucket)."""
    from modelyard.core.jsonsafe import encode_float
    from modelyard.train.run_queries import metric_series as series

    data = series(_runs(request), run_id, key, max_points)
    # a metric that went NaN or infinite travels as a string, as in GET /runs/{run_id}'s history
    def safe(value):
        return None if value is None else encode_float(value)

    data["points"] = [[step, safe(value)] for step, value in data["points"]]
    data["last"] = safe(data["last"])
    return data


@router.get("/runs-compare", responses=documented(RunCompare, 404, 422))
def compare_runs(request: Request, ids: str = Query(..., description="Comma-separated run ids."),
                 _: Principal = Depends(require("viewer"))):
    return _runs(request).compare([i.strip() for i in ids.split(",") if i.strip()])


@router.get("/runs/{run_id}", responses=documented(RunWithHistory, 404, 422))
def get_run(run_id: str, request: Request, history: bool = Query(True, description="Include metric history."),
            _: Principal = Depends(require("viewer"))):
    store = _runs(request)
    data = store.get(run_id).to_dict()
    if history:
        from modelyard.core.jsonsafe import encode_float

        data["history"] = {key: [{**point, "value": encode_float(point["value"])} for point in points]
                           for key, points in store.metric_history(run_id).items()}
    return data


@router.post("/runs/{run_id}/metrics", responses=documented(Stored, 404, 409, 413, 422))
def log_metrics(run_id: str, body: LogMetrics, request: Request, _: Principal = Depends(require("editor"))):
    stored = _runs(request).log_metrics(run_id, [p.model_dump() for p in body.metrics])
    return {"stored": stored}


@router.post("/runs/{run_id}/params", responses=documented(Run, 404, 409, 413, 422))
def log_params(run_id: str, body: LogParams, request: Request, _: Principal = Depends(require("editor"))):
    return _runs(request).log_params(run_id, body.params).to_dict()


@router.post("/runs/{run_id}/logs", responses=documented(Stored, 404, 409, 413, 422))
def log_lines(run_id: str, body: LogLines, request: Request, _: Principal = Depends(require("editor"))):
    return {"stored": _runs(request).log_lines(run_id, body.lines)}


@router.get("/runs/{run_id}/logs", responses=documented(RunLogs, 404, 422))
def read_logs(run_id: str, request: Request, offset: int = Query(0, ge=0, le=MAX_STORED_INT),
              limit: int = Query(10_000, ge=1, le=100_000),
              _: Principal = Depends(require("viewer"))):
    return {"schema": "modelyard.run-logs/1", **_runs(request).logs(run_id, offset, limit)}


@router.post("/runs/{run_id}/artifacts", responses=documented(Run, 404, 409, 413, 422))
def add_artifact(run_id: str, body: Artifact, request: Request, _: Principal = Depends(require("editor"))):
    return _runs(request).add_artifact(run_id, body.name, body.digest).to_dict()


@router.post("/runs/{run_id}/finish", responses=documented(Run, 404, 409, 413, 422))
def finish_run(run_id: str, body: Finish, request: Request, _: Principal = Depends(require("editor"))):
    return _runs(request).finish(run_id, body.status, body.error).to_dict()


@router.delete("/runs/{run_id}", responses=documented(RunDeleted, 404, 409))
def delete_run(run_id: str, request: Request, _: Principal = Depends(require("editor"))):
    """Delete a finished, failed or killed run with its metrics and logs (409 while it runs)."""
    run = _runs(request).delete(run_id)
    return {"schema": "modelyard.run-deleted/1", "id": run.id, "name": run.name}
