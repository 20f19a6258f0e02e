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
end), so logging inside a tight loop costs microseconds, not a request each. A batch leaves the buffer only once
the server stored it: one that could not be sent is kept and sent again with the next flush.

NaN and +-inf metric values are recorded as they are. Over the REST API (which speaks standard JSON) they travel as
the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; this SDK writes and reads them back as floats.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from modelyard.core.errors import InvalidInput
from modelyard.core.jsonsafe import decode_float, encode_float

log = logging.getLogger("modelyard.runs")
MAX_KEY = 200


def _json_safe(value: Any) -> Any:
    """Params and tags as standard JSON: non-finite floats become their string names."""
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalars
        return _json_safe(value.item())
    return value


def _read_run(data: dict) -> dict:
    """A run as the API answers it, with ``"NaN"``/``"Infinity"`` metric values turned back into floats."""
    if isinstance(data.get("metrics"), dict):
        data["metrics"] = {k: decode_float(v) for k, v in data["metrics"].items()}
    if isinstance(data.get("history"), dict):
        for points in data["history"].values():
            for point in points:
                point["value"] = decode_float(point["value"])
    return data


class Runs:
    def __init__(self, client):
        self._c = client

    def create(self, name: str, experiment: str = "default", params: dict | None = None, tags: dict | None = None,
               dataset: str | None = None, job_id: str | None = None) -> dict:
        body = {"name": name, "experiment": experiment, "params": _json_safe(params or {}),
                "tags": _json_safe(tags or {}), "dataset": dataset, "job_id": job_id}
        return _read_run(self._c.request("POST", "/api/v1/runs", json=body).json())

    def get(self, run_id: str, history: bool = True) -> dict:
        """The run; metric values (``metrics`` and ``history``) are floats, NaN and +-inf included."""
        return _read_run(self._c.get_json(f"/api/v1/runs/{run_id}", params={"history": str(history).lower()}))

    def list(self, experiment: str | None = None, status: str | None = None, dataset: str | None = None,
             name: str | None = None, limit: int = 50) -> dict:
        params = {k: v for k, v in {"experiment": experiment, "status": status, "dataset": dataset, "name": name,
                                    "limit": limit}.items() if v is not None}
        data = self._c.get_json("/api/v1/runs", params=params)
        data["items"] = [_read_run(item) for item in data.get("items", [])]
        return data

    def compare(self, run_ids: list[str]) -> dict:
        data = self._c.get_json("/api/v1/runs-compare", params={"ids": ",".join(run_ids)})
        data["runs"] = [_read_run(item) for item in data.get("runs", [])]
        return data

    def log_metrics(self, run_id: str, points: list[dict]) -> int:
        """Store ``[{"key", "value", "step"?}]``; NaN and +-inf values are sent as their string names."""
        body = [{**point, "value": encode_float(float(point["value"]))} for point in points]
        return self._c.request("POST", f"/api/v1/runs/{run_id}/metrics", json={"metrics": body}).json()["stored"]

    def log_params(self, run_id: str, params: dict) -> dict:
        return _read_run(self._c.request("POST", f"/api/v1/runs/{run_id}/params",
                                         json={"params": _json_safe(params)}).json())

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
        return _read_run(self._c.request("POST", f"/api/v1/runs/{run_id}/artifacts",
                                         json={"name": name or path.name, "digest": digest}).json())

    def delete(self, run_id: str) -> dict:
        """Delete an ended run with its metrics and logs. Returns ``modelyard.run-deleted/1``."""
        return self._c.request("DELETE", f"/api/v1/runs/{run_id}").json()

    def finish(self, run_id: str, status: str = "finished", error: str | None = None) -> dict:
        return _read_run(self._c.request("POST", f"/api/v1/runs/{run_id}/finish",
                                         json={"status": status, "error": error}).json())


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
        """Record ``value`` of ``key`` at ``step`` (default: one after the key's previous step). NaN and +-inf are
        recorded as they are.

        Raises:
            InvalidInput: at once, for a key, value or step the server would refuse (so a batch is never refused
                for its content later, when the point can no longer be fixed).
        """
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise InvalidInput(f"metric key {key!r}: must be a non-empty string of at most {MAX_KEY} characters")
        if isinstance(value, bool):
            raise InvalidInput(f"metric {key}: value {value!r} is not a number")
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"metric {key}: value {value!r} is not a number") from exc
        if step is None:
            step = self._steps.get(key, -1) + 1
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise InvalidInput(f"metric {key}: step must be a whole number >= 0, not {step!r}")
        self._steps[key] = max(int(step), self._steps.get(key, -1))
        self._buffer.append({"key": key, "value": value, "step": int(step)})
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
        """Send the buffered points and lines. What the server did not store stays buffered for the next flush."""
        self._last_flush = time.monotonic()
        if self._buffer:
            points = self._buffer[:]
            self._client.runs.log_metrics(self.id, points)
            del self._buffer[:len(points)]
        if self._lines:
            lines = self._lines[:]
            self._client.runs.log_lines(self.id, lines)
            del self._lines[:len(lines)]

    def _maybe_flush(self) -> None:
        if len(self._buffer) + len(self._lines) >= self._flush_every or \
                time.monotonic() - self._last_flush >= self._flush_s:
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - a server hiccup must not stop the training loop
                # the points stay buffered; the next flush (or the end of the run) sends them again
                log.warning("run %s: %d metric point(s) not sent yet, will retry: %s", self.id, len(self._buffer),
                            exc)

    # -- ending -------------------------------------------------------------------------------------------------
    def end(self, status: str = "finished", error: str | None = None) -> dict:
        """Send what is buffered and end the run; returns the final run.

        When the buffered points cannot be sent the run ends ``failed`` (saying how many points were lost) and the
        send error is raised.
        """
        flush_error = None
        try:
            self.flush()
        except Exception as exc:  # noqa: BLE001 - reported below, after the run has ended
            flush_error = exc
            lost = f"{len(self._buffer)} metric point(s) and {len(self._lines)} log line(s) could not be stored: {exc}"
            if status == "finished":
                status, error = "failed", lost
            else:
                error = f"{error}\n{lost}" if error else lost
        try:
            self.info = _read_run(self._client.runs.finish(self.id, status, error))
        finally:
            self.ended = True
            if self._own_client:
                self._client.close()
        if flush_error is not None:
            raise flush_error
        return self.info

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.ended:
            return
        if exc_type is None:
            self.end("finished")
            return
        status, detail = ("killed", "interrupted") if issubclass(exc_type, KeyboardInterrupt) else \
            ("failed", "".join(traceback.format_exception_only(exc_type, exc)).strip()[:10_000])
        try:
            self.end(status, detail)
        except Exception as end_error:  # noqa: BLE001 - never mask the user's own exception
            warnings.warn(f"run {self.id}: could not record the end of the run: {end_error}", RuntimeWarning,
                          stacklevel=2)

