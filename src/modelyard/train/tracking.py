"""Tracked runs: parameters, per-step metrics, log lines, artifacts (blobs) and the dataset version trained on.

Every AutoML job records one run; any script records its own through the SDK (``with modelyard.run(...) as r``).
Writes are single guarded statements: a finished run no longer accepts metrics, so a late writer cannot change
history.

Example::

    runs = RunStore(workspace)
    run = runs.create("lgbm-baseline", params={"lr": 0.1}, dataset="iris@1")
    runs.log_metrics(run.id, [{"key": "val_accuracy", "value": 0.93, "step": 1}])
    runs.finish(run.id)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.core.jsonsafe import decode_float, encode_float
from modelyard.store.db import as_utc
from modelyard.store.schema_data import RUN_STATUSES, run_logs, run_metrics, runs
from modelyard.store.workspace import Workspace

MAX_KEY = 200
MAX_BATCH = 10_000
MAX_PARAM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Run:
    """One tracked run; ``metrics`` holds the latest value of each metric key (floats, NaN and +-inf included;
    :meth:`to_dict` writes those as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``)."""

    id: str
    name: str
    experiment: str
    status: str
    params: dict
    tags: dict
    metrics: dict
    artifacts: list
    dataset: str | None
    job_id: str | None
    model: str | None
    error: str | None
    created_by: str
    started_at: datetime
    ended_at: datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds(), 3)

    def to_dict(self) -> dict:
        return {
            "schema": "modelyard.run/1",
            "id": self.id,
            "name": self.name,
            "experiment": self.experiment,
            "status": self.status,
            "params": self.params,
            "tags": self.tags,
            "metrics": {key: encode_float(value) for key, value in self.metrics.items()},
            "artifacts": self.artifacts,
            "dataset": self.dataset,
            "job_id": self.job_id,
            "model": self.model,
            "error": self.error,
            "created_by": self.created_by,
            "started_at": isoformat(self.started_at),
            "ended_at": isoformat(self.ended_at),
            "duration_s": self.duration_s,
        }

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.metrics.items())[:6])
        return f"{self.id} {self.name} [{self.status}] {shown}"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _jsonable(value: Any, where: str) -> Any:
    """Params and tags are JSON; non-finite floats become strings so PostgreSQL's JSONB accepts them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, where) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item(), where)
    return str(value)


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise InvalidInput(f"metric key {key!r}: must be a non-empty string of at most {MAX_KEY} characters")
    return key


class RunStore:
    """Runs of one workspace. Constructing it does no I/O."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine

    def _run(self, row) -> Run:
        return Run(
            id=row.id, name=row.name, experiment=row.experiment, status=row.status, params=row.params or {},
            tags=row.tags or {}, metrics={k: float(decode_float(v)) for k, v in (row.metrics or {}).items()},
            artifacts=row.artifacts or [], dataset=row.dataset,
            job_id=row.job_id, model=row.model, error=row.error, created_by=row.created_by,
            started_at=as_utc(row.started_at), ended_at=as_utc(row.ended_at),
        )

    def create(self, name: str, experiment: str = "default", params: dict | None = None, tags: dict | None = None,
               dataset: str | None = None, job_id: str | None = None, created_by: str = "") -> Run:
        """Start a run (status ``running``)."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise InvalidInput("name: a run needs a name of 1-200 characters")
        if not isinstance(experiment, str) or not experiment.strip() or len(experiment) > 200:
            raise InvalidInput("experiment: 1-200 characters")
        if dataset is not None:
            from modelyard.data.refs import parse_ref

            parse_ref(dataset)
        run_id = new_id("run")
        with self.engine.begin() as conn:
            conn.execute(runs.insert().values(
                id=run_id, name=name.strip(), experiment=experiment.strip(), status="running",
                params=_jsonable(params or {}, "params"), tags=_jsonable(tags or {}, "tags"), metrics={},
                artifacts=[], dataset=dataset, job_id=job_id, created_by=created_by, started_at=utcnow()))
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id} not found")
        return self._run(row)

    def list(self, experiment: str | None = None, status: str | None = None, dataset: str | None = None,
             name: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first."""
        if status is not None and status not in RUN_STATUSES:
            raise InvalidInput(f"status {status!r}: expected one of {', '.join(RUN_STATUSES)}")
        query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(max(1, min(limit, 1000)))
        for column, value in ((runs.c.experiment, experiment), (runs.c.status, status), (runs.c.dataset, dataset),
                              (runs.c.name, name)):
            if value is not None:
                query = query.where(column == value)
        with self.engine.connect() as conn:
            return [self._run(r) for r in conn.execute(query).all()]

    def of_job(self, job_id: str) -> list[Run]:
        """The runs a job created, oldest first (a re-queued job finds the run its earlier attempt tracked)."""
        query = sa.select(runs).where(runs.c.job_id == job_id).order_by(runs.c.started_at, runs.c.id)
        with self.engine.connect() as conn:
            return [self._run(r) for r in conn.execute(query).all()]

    def _require_running(self, conn, run_id: str) -> None:
        status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
        if status is None:
            raise NotFound(f"run {run_id} not found")
        if status != "running":
            raise Conflict(f"run {run_id} is {status}; it no longer accepts changes")

    def log_params(self, run_id: str, params: dict) -> Run:
        if not isinstance(params, dict):
            raise InvalidInput("params: expected an object")
        with self.engine.begin() as conn:
            self._require_running(conn, run_id)
            current = conn.execute(sa.select(runs.c.params).where(runs.c.id == run_id)).scalar() or {}
            merged = {**current, **_jsonable(params, "params")}
            if len(str(merged)) > MAX_PARAM_BYTES:
                raise InvalidInput(f"params: more than {MAX_PARAM_BYTES} bytes")
            conn.execute(runs.update().where(runs.c.id == run_id).values(params=merged))
        return self.get(run_id)

    def log_metrics(self, run_id: str, metrics: list[dict]) -> int:
        """Append ``[{"key", "value", "step"?}]``; a missing step continues after the key's last one.

        Returns the number of points stored. NaN and +-inf are stored as they are (a loss that diverged is worth
        seeing); ``value`` may also be one of the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
        """
        if not isinstance(metrics, list) or len(metrics) > MAX_BATCH:
            raise InvalidInput(f"metrics: expected a list of at most {MAX_BATCH} points")
        now = utcnow()
        with self.engine.begin() as conn:
            self._require_running(conn, run_id)
            latest = dict(conn.execute(
                sa.select(run_metrics.c.key, sa.func.max(run_metrics.c.step))
                .where(run_metrics.c.run_id == run_id).group_by(run_metrics.c.key)).all())
            rows, summary = [], {}
            for index, point in enumerate(metrics):
                if not isinstance(point, dict):
                    raise InvalidInput(f"metrics[{index}]: expected an object with key, value and step")
                key = _check_key(point.get("key"))
                raw = decode_float(point.get("value"))
                if isinstance(raw, bool):
                    raise InvalidInput(f"metrics[{index}] {key}: value {raw!r} is not a number")
                try:
                    value = float(raw)
                except (TypeError, ValueError, OverflowError) as exc:
                    raise InvalidInput(f"metrics[{index}] {key}: value {point.get('value')!r} is not a number") from exc
                step = point.get("step")
                if step is None:
                    step = (latest.get(key) if latest.get(key) is not None else -1) + 1
                if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                    raise InvalidInput(f"metrics[{index}] {key}: step must be a whole number >= 0")
                latest[key] = max(step, latest.get(key) if latest.get(key) is not None else -1)
                rows.append({"run_id": run_id, "key": key, "step": step, "value": value, "at": now})
                summary[key] = encode_float(value)
            if rows:
                conn.execute(run_metrics.insert(), rows)
                current = conn.execute(sa.select(runs.c.metrics).where(runs.c.id == run_id)).scalar() or {}
                conn.execute(runs.update().where(runs.c.id == run_id).values(metrics={**current, **summary}))
        return len(rows)

    def metric_history(self, run_id: str, key: str | None = None) -> dict[str, list[dict]]:
        """``{key: [{"step", "value", "at"}, ...]}`` in step order; values are floats (NaN and +-inf included)."""
        self.get(run_id)
        query = sa.select(run_metrics).where(run_metrics.c.run_id == run_id)
        if key is not None:
            query = query.where(run_metrics.c.key == key)
        out: dict[str, list[dict]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(run_metrics.c.key, run_metrics.c.step, run_metrics.c.id)):
                out.setdefault(row.key, []).append(
                    {"step": row.step, "value": row.value, "at": isoformat(as_utc(row.at))})
        return out

    def log_lines(self, run_id: str, lines: list[str]) -> int:
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise InvalidInput("lines: expected a list of strings")
        if not lines:
            return 0
        now = utcnow()
        with self.engine.begin() as conn:
            self._require_running(conn, run_id)
            conn.execute(run_logs.insert(), [{"run_id": run_id, "at": now, "line": line[:10_000]} for line in lines])
        return len(lines)

    def logs(self, run_id: str, offset: int = 0, limit: int = 10_000) -> dict:
        """Log lines from ``offset`` (a line count); ``next`` is where the next read starts."""
        self.get(run_id)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(run_logs).where(run_logs.c.run_id == run_id).order_by(run_logs.c.id)
                                .offset(max(0, offset)).limit(max(1, min(limit, 100_000)))).all()
        return {"lines": [{"at": isoformat(as_utc(r.at)), "line": r.line} for r in rows], "next": offset + len(rows)}

    def add_artifact(self, run_id: str, name: str, digest: str, size: int | None = None) -> Run:
        """Attach a blob (already in the store) to the run under ``name``."""
        if not isinstance(name, str) or not name or len(name) > 500 or name.startswith("/") or ".." in name.split("/"):
            raise InvalidInput(f"artifact name {name!r}: a relative file name of at most 500 characters")
        info = self.workspace.blobs.info(digest)
        with self.engine.begin() as conn:
            self._require_running(conn, run_id)
            current = conn.execute(sa.select(runs.c.artifacts).where(runs.c.id == run_id)).scalar() or []
            entry = {"name": name, "digest": "sha256:" + info.digest, "size": info.size if size is None else size}
            kept = [a for a in current if a["name"] != name]
            conn.execute(runs.update().where(runs.c.id == run_id).values(artifacts=[*kept, entry]))
        return self.get(run_id)

    def set_model(self, run_id: str, model: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(model=model))

    def finish(self, run_id: str, status: str = "finished", error: str | None = None) -> Run:
        """End a running run as ``finished``, ``failed`` or ``killed``."""
        if status not in ("finished", "failed", "killed"):
            raise InvalidInput(f"status {status!r}: expected finished, failed or killed")
        with self.engine.begin() as conn:
            changed = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.status == "running")
                                   .values(status=status, error=error, ended_at=utcnow())).rowcount
        run = self.get(run_id)
        if not changed:
            raise Conflict(f"run {run_id} has already ended ({run.status})")
        return run

    def delete(self, run_id: str) -> Run:
        """Delete a run with its metrics and log lines. Its artifact blobs stay until ``blobs gc`` finds nothing
        else refers to them. Refused while the run is still running (its job would write into nothing)."""
        run = self.get(run_id)
        if run.status == "running":
            raise Conflict(f"run {run_id} is still running; finish or kill it before deleting it")
        with self.engine.begin() as conn:
            conn.execute(run_metrics.delete().where(run_metrics.c.run_id == run_id))
            conn.execute(run_logs.delete().where(run_logs.c.run_id == run_id))
            conn.execute(runs.delete().where(runs.c.id == run_id))
        return run

    def compare(self, run_ids: list[str]) -> dict:
        """Params and latest metrics of several runs side by side; ``differs`` lists the keys that vary."""
        if not 1 <= len(run_ids) <= 50:
            raise InvalidInput("compare: give 1 to 50 run ids")
        items = [self.get(run_id) for run_id in run_ids]
        params = sorted({k for r in items for k in r.params})
        metrics = sorted({k for r in items for k in r.metrics})

        def differs(getter, keys):
            return [k for k in keys if len({repr(getter(r).get(k)) for r in items}) > 1]

        best = {}
        for key in metrics:
            values = [(r.metrics[key], r.id) for r in items if key in r.metrics and math.isfinite(r.metrics[key])]
            if not values:
                continue
            lower = any(word in key.lower() for word in ("loss", "error", "mae", "mse", "rmse", "latency"))
            best[key] = (min(values) if lower else max(values))[1]
        return {
            "schema": "modelyard.run-compare/1",
            "runs": [r.to_dict() for r in items],
            "params": params,
            "metrics": metrics,
            "differs": {
                "params": differs(lambda r: r.params, params),
                "metrics": differs(lambda r: r.metrics, metrics),
            },
            "best": best,
        }
