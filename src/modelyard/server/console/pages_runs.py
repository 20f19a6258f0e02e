"""Runs: a table with the metric and parameter columns the user picks (sorted by the database), one run with its
per-step charts (downsampled server-side), compare 2-10 runs, and runs grouped by a parameter (mean ± std across
seeds). REST twins: ``GET /api/v1/runs`` (offset, sort), ``/runs/{id}``, ``/runs/{id}/series/{key}``,
``/runs-compare``, ``/runs-groups``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from modelyard.core.errors import InvalidInput
from modelyard.server.console.charts import error_bars, line_chart
from modelyard.server.console.web import Paging, Viewer, page, render
from modelyard.store.schema_data import RUN_STATUSES

router = APIRouter()
CHART_POINTS = 800
MAX_CHARTS = 8


def _store(request: Request):
    from modelyard.train.tracking import RunStore

    return RunStore(request.app.state.workspace)


def _keys(text: str | None) -> list[str]:
    return [k.strip() for k in (text or "").split(",") if k.strip()][:12]


@router.get("/runs")
def runs_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.train.run_queries import RUN_SORTS, browse_runs, experiments

    store = _store(request)
    query = request.query_params
    paging = Paging.from_request(request, tuple(RUN_SORTS), "started", keyed=True)
    filters = {"experiment": query.get("experiment") or None, "status": query.get("status") or None,
               "search": query.get("q") or None}
    if filters["status"] not in (None, *RUN_STATUSES):
        filters["status"] = None
    items, total = browse_runs(store, **filters, sort=paging.sort, desc=paging.desc, offset=paging.offset,
                               limit=paging.per)
    seen_metrics = sorted({k for r in items for k in r.metrics})
    seen_params = sorted({k for r in items for k in r.params})
    metric_cols = _keys(query.get("m")) if "m" in query else seen_metrics[:4]
    param_cols = _keys(query.get("p")) if "p" in query else [k for k in seen_params if k != "description"][:3]
    return render(request, "runs.html", viewer, title="Runs", runs=items, total=total, paging=paging,
                  filters=filters, statuses=RUN_STATUSES, experiments=experiments(store)[:200],
                  metric_cols=metric_cols, param_cols=param_cols, seen_metrics=seen_metrics, seen_params=seen_params)


@router.get("/runs/compare")
def compare_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.train.run_queries import metric_keys, metric_series

    ids = [i for value in request.query_params.getlist("ids") for i in value.split(",") if i.strip()]
    ids = list(dict.fromkeys(i.strip() for i in ids))
    if not 2 <= len(ids) <= 10:
        raise InvalidInput(f"compare: pick 2 to 10 runs (got {len(ids)})")
    store = _store(request)
    compared = store.compare(ids)
    keys = sorted({k for run_id in ids for k in metric_keys(store, run_id)})
    key = request.query_params.get("key") or (keys[0] if keys else None)
    chart = None
    if key:
        names = {r["id"]: r["name"] for r in compared["runs"]}
        series = [(f"{names[i]} ({i[-8:]})", metric_series(store, i, key, CHART_POINTS)["points"]) for i in ids]
        chart = line_chart(series, key, note="overlaid, downsampled server-side")
    return render(request, "runs_compare.html", viewer, title="Compare runs", nav="runs", c=compared, ids=ids,
                  keys=keys, key=key, figure=chart)


@router.get("/runs/groups")
def groups_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.train.run_queries import experiments, group_runs

    store = _store(request)
    query = request.query_params
    param, metric = query.get("param", "").strip(), query.get("metric", "").strip()
    experiment = query.get("experiment") or None
    result = chart = None
    if param and metric:
        result = group_runs(store, param, metric, experiment, status=query.get("status") or "finished")
        chart = error_bars(result["groups"][:20], f"{metric} by {param}") if result["groups"] else None
    return render(request, "runs_groups.html", viewer, title="Group runs", nav="runs", param=param, metric=metric,
                  experiment=experiment, experiments=experiments(store)[:200], result=result, figure=chart)


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str, viewer: Viewer = Depends(page())):
    from modelyard.train.run_queries import metric_keys, metric_series

    store = _store(request)
    run = store.get(run_id)
    keys = metric_keys(store, run_id)
    chosen = _keys(request.query_params.get("keys")) or keys[:MAX_CHARTS]
    charts, single = [], []
    for key in chosen[:MAX_CHARTS]:
        series = metric_series(store, run_id, key, CHART_POINTS)
        if series["count"] < 2:
            single.append(key)  # one value is a number in the metrics table, not a chart
            continue
        note = (f"{series['count']:,} steps, downsampled to {len(series['points'])} points (min/max per bucket)"
                if series["downsampled"] else f"{series['count']:,} steps")
        charts.append(line_chart([(key, series["points"])], key, note=note, width=640, height=260))
    logs = store.logs(run_id, 0, 200)
    return render(request, "run.html", viewer, title=f"Run {run.name}", nav="runs", run=run, keys=keys,
                  charts=charts, single=single, logs=logs["lines"])
