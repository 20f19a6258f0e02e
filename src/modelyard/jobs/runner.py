"""The process a job runs in: ``python -m modelyard.jobs.runner --job ID`` (started by an executor).

It opens the workspace, validates the spec against the kind again (a kind may have changed since submit),
runs the kind, and records the result. Its stdout and stderr are the job's log file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from modelyard.core import plugins
from modelyard.core.errors import ModelyardError
from modelyard.core.extras import missing_dependency
from modelyard.core.settings import Settings
from modelyard.jobs.queue import JobQueue
from modelyard.store.workspace import Workspace

PROGRESS_INTERVAL_S = 0.5


class ProcessJobContext:
    """The ``JobContext`` a kind sees inside the job process."""

    def __init__(self, queue: JobQueue, job_id: str, workdir: Path, home: Path):
        self.queue = queue
        self.job_id = job_id
        self.workdir = workdir
        self.home = home
        self._last_progress = 0.0

    def progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.queue.report_progress(self.job_id, fraction, message)

    def log(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        print(f"{stamp} {message}", flush=True)

    def cancelled(self) -> bool:
        return self.queue.get(self.job_id).cancel_requested


def run_job(queue: JobQueue, job_id: str) -> int:
    """Run one claimed job to a terminal state. Returns the process exit code."""
    job = queue.get(job_id)
    ctx = ProcessJobContext(queue, job_id, queue.job_dir(job_id) / "work", queue.workspace.home)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    ctx.log(f"job {job_id} kind={job.kind} attempt={job.attempts} pid={os.getpid()}")
    started = time.monotonic()
    try:
        kind = plugins.load_job_kind(job.kind)
        spec = kind.validate_spec(job.spec)
        result = kind.run(spec, ctx)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"job kind {job.kind} returned {type(result).__name__}, not a dict")
    except ModelyardError as exc:
        if ctx.cancelled():
            return _finish_cancelled(queue, ctx, job)
        ctx.log(f"failed: {exc}")
        queue.finish(job_id, "failed", error=str(exc), message="failed", worker=job.worker)
        return 1
    except Exception as exc:  # noqa: BLE001 - a job's bug must end the job, not the worker
        traceback.print_exc()
        missing = missing_dependency(exc)
        error = str(missing) if missing is not None else f"{type(exc).__name__}: {exc}"
        ctx.log(f"failed: {error}")
        queue.finish(job_id, "failed", error=error, message="failed", worker=job.worker)
        return 1
    if ctx.cancelled():  # a kind that stopped early on request returns a partial result: that is no success
        return _finish_cancelled(queue, ctx, job)
    try:
        result = json_safe(result or {})
    except (TypeError, ValueError) as exc:
        ctx.log(f"failed: the result is not JSON: {exc}")
        queue.finish(job_id, "failed", error=f"job kind {job.kind} returned a result that is not JSON: {exc}",
                     message="failed", worker=job.worker)
        return 1
    ctx.log(f"succeeded in {time.monotonic() - started:.2f}s")
    queue.finish(job_id, "succeeded", result=result, message="done", worker=job.worker)
    return 0


def _finish_cancelled(queue: JobQueue, ctx: ProcessJobContext, job) -> int:
    ctx.log("cancelled on request")
    queue.finish(job.id, "cancelled", message="cancelled", worker=job.worker)
    return 0


def json_safe(value):
    """``value`` as strict JSON data: numpy scalars and arrays become numbers and lists, NaN and infinities become
    None (JSON has no such numbers, and one of them would break every listing that contains the job)."""
    import json
    import math

    def default(obj):
        for attr in ("tolist", "item"):
            if hasattr(obj, attr):
                return getattr(obj, attr)()
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    def clean(obj):
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        if isinstance(obj, dict):
            return {str(k): clean(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj

    return clean(json.loads(json.dumps(value, default=default, allow_nan=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard.jobs.runner")
    parser.add_argument("--home", required=True)
    parser.add_argument("--job", required=True)
    args = parser.parse_args(argv)
    workspace = Workspace.open(Settings.load(args.home), create=False, migrate=False)
    try:
        return run_job(JobQueue(workspace), args.job)
    finally:
        workspace.close()


if __name__ == "__main__":
    sys.exit(main())
