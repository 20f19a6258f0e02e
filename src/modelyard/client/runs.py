"""``client.runs`` and the ``ActiveRun`` that ``modelyard.run(...)`` returns: tracked runs from any Python
training script.

Example::

    import modelyard

    with modelyard.run("my-cnn", params={"lr": 3e-4}, dataset="digits@2") as r:
        for epoch in range(10):
            r.log_metric("val_accuracy", acc, step=epoch)
        r.log_artifact("model.onnx")
    # the run ends "finished"; an exception inside the block ends it "failed" with the error

Metric points are buffered and sent in batches (every ``flush_every`` points or ``flush_s`` seconds, and at the
end), so logging inside a tight loop costs microseconds, not a request each.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any


class Runs:
    def __init__(self, client):
        self._c = client

    def create(self, name: str, experiment: str = "default", params: dict | None = None, tags: dict | None = None,
               dataset: str | None = None, job_id: str | None = None) -> dict:
        body = {"name": name, "experiment": experiment, "params": params or {}, "tags": tags or {},
                "dataset": dataset, "job_id": job_id}
        return self._c.request("POST", "/api/v1/runs", json=body).json()

    def get(self, run_id: str, history: bool = True) -> dict:
        return self._c.get_json(f"/api/v1/runs/{run_id}", params={"history": str(history).lower()})

    def list(self, experiment: str | None = None, status: str | None = None, dataset: str | None = None,
             name: str | None = None, limit: int = 50) -> dict:
        params = {k: v for k, v in {"experiment": experiment, "status": status, "dataset": dataset, "name": name,
                                    "limit": limit}.items() if v is not None}
        return self._c.get_json("/api/v1/runs", params=params)

    def compare(self, run_ids: list[str]) -> dict:
        return self._c.get_json("/api/v1/runs-compare", params={"ids": ",".join(run_ids)})

    def log_metrics(self, run_id: str, points: list[dict]) -> int:
        return self._c.request("POST", f"/api/v1/runs/{run_id}/metrics", json={"metrics": points}).json()["stored"]

    def log_params(self, run_id: str, params: dict) -> dict:
        return self._c.request("POST", f"/api/v1/runs/{run_id}/params", json={"params": params}).json()

    def log_lines(self, run_id: str, lines: list[str]) -> int:
        return self._c.request("POST", f"/api/v1/runs/{run_id}/logs", json={"lines": lines}).json()["stored"]

    def logs(self, run_id: str, offset: int = 0) -> dict:
        return self._c.get_json(f"/api/v1/runs/{run_id}/logs", params={"offset": offset})

    def add_artifact(self, run_id: str, path: str | Path, name: str | None = None) -> dict:
        """Upload a file to the blob store and attach it to the run as ``name`` (default: the file name)."""
        path = Path(path)
        if self._c.in_process:
            digest = "sha256:" + self._c._workspace.blobs.put_file(path).digest
        else:
            digest = self._c.blobs.put(path)["digest"]
        return self._c.request("POST", f"/api/v1/runs/{run_id}/artifacts",
                               json={"name": name or path.name, "digest": digest}).json()

    def delete(self, run_id: str) -> dict:
        """Delete an ended run with its metrics and logs. Returns ``modelyard.run-deleted/1``."""
        return self._c.request("DELETE", f"/api/v1/runs/{run_id}").json()

    def finish(self, run_id: str, status: str = "finished", error: str | None = None) -> dict:
        return self._c.request("POST", f"/api/v1/runs/{run_id}/finish",
                               json={"status": status, "error": error}).json()


class ActiveRun:
    """A run being recorded; use it as a context manager (see the module docstring)."""

    def __init__(self, client, info: dict, own_client: bool, flush_every: int = 200, flush_s: float = 2.0):
        self._client = client
        self._own_client = own_client
        self.info = info
        self.id: str = info["id"]
        self._buffer: list[dict] = []
        self._lines: list[str] = []
        self._flush_every = flush_every
        self._flush_s = flush_s
        self._last_flush = time.monotonic()
        self._steps: dict[str, int] = {}
        self.ended = False

    # -- logging ------------------------------------------------------------------------------------------------
    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Record ``value`` of ``key`` at ``step`` (default: one after the key's previous step)."""
        if step is None:
            step = self._steps.get(key, -1) + 1
        self._steps[key] = max(step, self._steps.get(key, -1))
        self._buffer.append({"key": key, "value": float(value), "step": int(step)})
        self._maybe_flush()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.log_metric(key, value, step)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict) -> None:
        self._client.runs.log_params(self.id, params)

    def log(self, line: str) -> None:
        """Append a line to the run's log."""
        self._lines.append(str(line))
        self._maybe_flush()

    def log_artifact(self, path: str | Path, name: str | None = None) -> None:
        self.flush()
        self._client.runs.add_artifact(self.id, path, name)

    def flush(self) -> None:
        if self._buffer:
            points, self._buffer = self._buffer, []
            self._client.runs.log_metrics(self.id, points)
        if self._lines:
            lines, self._lines = self._lines, []
            self._client.runs.log_lines(self.id, lines)
        self._last_flush = time.monotonic()

    def _maybe_flush(self) -> None:
        if len(self._buffer) + len(self._lines) >= self._flush_every or \
                time.monotonic() - self._last_flush >= self._flush_s:
            self.flush()

    # -- ending -------------------------------------------------------------------------------------------------
    def end(self, status: str = "finished", error: str | None = None) -> dict:
        """Send what is buffered and end the run; returns the final run."""
        try:
            self.flush()
        finally:
            self.info = self._client.runs.finish(self.id, status, error)
            self.ended = True
            if self._own_client:
                self._client.close()
        return self.info

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.ended:
            return
        if exc_type is None:
            self.end("finished")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("killed", "interrupted")
        else:
            detail = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.end("failed", detail[:10_000])
