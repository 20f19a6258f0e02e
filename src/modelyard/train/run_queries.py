"""Reading many runs at once, for tables and charts that stay fast at scale: a page of runs sorted by any column,
metric or parameter (the database sorts); a metric's history downsampled by the database to at most N points; and
runs grouped by a parameter with the mean and standard deviation of a metric across the group (seeds).

The console's runs pages and their REST twins (``GET /runs?offset=&sort=``, ``GET /runs/{id}/series/{key}``,
``GET /runs-groups``) call these functions.

Example::

    runs, total = browse_runs(store, experiment="automl", sort="metric:val_accuracy", desc=True, limit=50)
    series = metric_series(store, run_id, "loss", max_points=800)   # 100,000 steps -> at most 800 points
"""

from __future__ import annotations

import math

import sqlalchemy as sa

from modelyard.core.errors import InvalidInput
from modelyard.core.jsonsafe import decode_float
from modelyard.store.listing import fetch_page, ordered
from modelyard.store.schema_data import RUN_STATUSES, run_metrics, runs
from modelyard.train.tracking import Run, RunStore

RUN_SORTS = {"started": runs.c.started_at, "name": runs.c.name, "status": runs.c.status,
             "experiment": runs.c.experiment, "ended": runs.c.ended_at}
MAX_POINTS = 5000
MAX_GROUP_RUNS = 10_000


def _json_key(column, key: str):
    if not key or len(key) > 200:
        raise InvalidInput(f"key {key!r}: 1-200 characters")
    return column[key]


def browse_runs(store: RunStore, experiment: str | None = None, status: str | None = None,
                search: str | None = None, dataset: str | None = None, sort: str = "started", desc: bool = True,
                offset: int = 0, limit: int = 50) -> tuple[list[Run], int]:
    """A page of runs and the number that match.

    Args:
        sort: ``started`` (default), ``name``, ``status``, ``experiment``, ``ended``, ``metric:KEY`` (a metric's
            latest value) or ``param:KEY``; runs without the key come last.
        search: part of the run's name.
    """
    if status is not None and status not in RUN_STATUSES:
        raise InvalidInput(f"status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
    if sort.startswith("metric:"):
        column = _json_key(runs.c.metrics, sort[7:]).as_float()
    elif sort.startswith("param:"):
        column = _json_key(runs.c.params, sort[6:]).as_string()
    elif sort in RUN_SORTS:
        column = RUN_SORTS[sort]
    else:
        raise InvalidInput(f"sort {sort!r}: one of {', '.join(RUN_SORTS)}, metric:KEY or param:KEY")
    query = sa.select(runs)
    for col, value in ((runs.c.experiment, experiment), (runs.c.status, status), (runs.c.dataset, dataset)):
        if value:
            query = query.where(col == value)
    if search:
        query = query.where(runs.c.name.contains(search, autoescape=True))
    rows, total = fetch_page(store.engine, query, [ordered(column, desc), runs.c.id.desc()], offset, limit)
    return [store._run(row) for row in rows], total


def experiments(store: RunStore) -> list[dict]:
    """Every experiment with its number of runs and its newest run's start, newest first."""
    query = (sa.select(runs.c.experiment, sa.func.count().label("runs"), sa.func.max(runs.c.started_at).label("last"))
             .group_by(runs.c.experiment).order_by(sa.func.max(runs.c.started_at).desc()))
    with store.engine.connect() as conn:
        return [{"experiment": r.experiment, "runs": r.runs, "last": r.last} for r in conn.execute(query)]


def metric_keys(store: RunStore, run_id: str) -> list[str]:
    """The metric keys a run has a history for."""
    store.get(run_id)
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(run_metrics.c.key).where(run_metrics.c.run_id == run_id)
                                 .group_by(run_metrics.c.key).order_by(run_metrics.c.key)).scalars())


def metric_series(store: RunStore, run_id: str, key: str, max_points: int = 1000) -> dict:
    """One metric's history as at most ``max_points`` ``[step, value]`` points, in step order.

    Long histories are reduced in the database to the minimum and the maximum of each of ``max_points / 2``
    equal step ranges, so a spike or a divergence is never averaged away and 100,000 steps cost one GROUP BY.

    Returns:
        ``{"schema": "modelyard.metric-series/1", "run", "key", "points", "count", "downsampled",
        "first_step", "last_step", "last"}``.
    """
    if not 10 <= max_points <= MAX_POINTS:
        raise InvalidInput(f"max_points must be between 10 and {MAX_POINTS}")
    store.get(run_id)
    where = (run_metrics.c.run_id == run_id, run_metrics.c.key == key)
    with store.engine.connect() as conn:
        count, first, last = conn.execute(sa.select(sa.func.count(), sa.func.min(run_metrics.c.step),
                                                    sa.func.max(run_metrics.c.step)).where(*where)).one()
        if count <= max_points:
            rows = conn.execute(sa.select(run_metrics.c.step, run_metrics.c.value).where(*where)
                                .order_by(run_metrics.c.step, run_metrics.c.id)).all()
            points = [[r.step, r.value] for r in rows]
        else:
            width = max(1, math.ceil((last - first + 1) / (max_points // 2)))
            bucket = ((run_metrics.c.step - first) // width).label("bucket")
            rows = conn.execute(
                sa.select(bucket, sa.func.min(run_metrics.c.step), sa.func.max(run_metrics.c.step),
                          sa.func.min(run_metrics.c.value), sa.func.max(run_metrics.c.value))
                .where(*where).group_by(bucket).order_by(bucket)).all()
            points = []
            for _, low_step, high_step, low, high in rows:
                points.append([low_step, low])
                if high_step != low_step or high != low:
                    points.append([high_step, high])
        latest = conn.execute(sa.select(run_metrics.c.value).where(*where)
                              .order_by(run_metrics.c.step.desc(), run_metrics.c.id.desc()).limit(1)).scalar()
    return {"schema": "modelyard.metric-series/1", "run": run_id, "key": key, "points": points, "count": count,
            "downsampled": count > max_points, "first_step": first, "last_step": last, "last": latest}


def _group_value(value) -> str:
    return "(none)" if value is None else str(value)


def group_runs(store: RunStore, param: str, metric: str, experiment: str | None = None,
               status: str | None = "finished") -> dict:
    """Runs grouped by the value of ``param``: per group the mean, standard deviation (sample, n-1), min and max
    of ``metric``'s latest value, over runs that differ only in what the parameter does not fix (e.g. seeds).

    A run whose metric went NaN or infinite (stored as ``"NaN"``/``"Infinity"``) counts with that value: its
    group's mean and std are non-finite, min and max skip NaN, and such groups rank after the finite ones. The
    statistics are floats; the REST route sends non-finite ones as those strings.

    Returns:
        ``{"schema": "modelyard.run-groups/1", "param", "metric", "groups": [{"value", "n", "mean", "std",
        "min", "max", "runs"}]}`` sorted by mean, best first where the metric looks like a loss (lower is better).
    """
    param_value = _json_key(runs.c.params, param).as_string()
    stored = _json_key(runs.c.metrics, metric)
    # NOTE: the value is read as stored JSON, not cast in the database: a cast turns the string "NaN" into 0.0 on
    # SQLite (a diverged run would look perfect) and into a float NaN on PostgreSQL
    query = sa.select(runs.c.id, param_value.label("p"), stored.label("m")).where(stored.as_float().is_not(None))
    if experiment:
        query = query.where(runs.c.experiment == experiment)
    if status:
        query = query.where(runs.c.status == status)
    with store.engine.connect() as conn:
        rows = conn.execute(query.limit(MAX_GROUP_RUNS)).all()
    grouped: dict[str, list[tuple[str, float]]] = {}
    for run_id, value, score in rows:
        grouped.setdefault(_group_value(value), []).append((run_id, float(decode_float(score))))
    lower = any(word in metric.lower() for word in ("loss", "error", "mae", "mse", "rmse", "latency"))
    groups = []
    for value, members in grouped.items():
        scores = [s for _, s in members]
        mean = math.fsum(scores) / len(scores)
        # statistics.stdev is exact (fractions) and 10x slower; floats are plenty for a table of metric spreads
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in scores) / (len(scores) - 1)) if len(scores) > 1 else 0.0
        numbers = [x for x in scores if not math.isnan(x)] or [math.nan]
        groups.append({"value": value, "n": len(scores), "mean": mean, "std": std, "min": min(numbers),
                       "max": max(numbers), "runs": [r for r, _ in members][:50]})
    # best first; a NaN mean cannot be ranked, so those groups come last
    groups.sort(key=lambda g: (math.isnan(g["mean"]), g["mean"] if lower or math.isnan(g["mean"]) else -g["mean"]))
    return {"schema": "modelyard.run-groups/1", "param": param, "metric": metric, "experiment": experiment,
            "lower_is_better": lower, "groups": groups}


def runs_of_job(store: RunStore, job_id: str) -> list[Run]:
    """The runs a job recorded (an AutoML job records one), oldest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(runs).where(runs.c.job_id == job_id).order_by(runs.c.started_at)).all()
    return [store._run(row) for row in rows]
