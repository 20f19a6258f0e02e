"""Traffic capture in a replica: a bounded in-memory queue filled by the request path and drained by one
background thread into Parquet segments in the blob store (indexed in ``monitor_segments``).

The request path pays one ``random()`` and one ``deque.append`` per request: its inputs and outputs are kept by
reference and turned into records (:mod:`modelyard.deploy.monitoring.summaries`) by the thread. When the queue is
full the request is dropped from the capture and counted, never waited for; any capture failure is counted and
logged, never raised into a request.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import random
import threading
import time
from pathlib import Path

import numpy as np

from modelyard.deploy.monitoring.store import MonitorSettings, MonitorStore
from modelyard.deploy.monitoring.summaries import summarize_inputs, summarize_outputs

log = logging.getLogger("modelyard.monitoring")
SETTINGS_REFRESH_S = 2.0
SEGMENT_ROWS = 5000  # a segment is written once this many rows wait, or after flush_s
# inputs held by queued and not yet written requests: a queue of 10,000 image requests would otherwise hold GBs
MAX_HELD_BYTES = 64 * 1024 * 1024
REQUEST_ID_HEADER = "x-modelyard-request-id"
MAX_REQUEST_ID_CHARS = 100


def columns_to_parquet(chunks: list[dict[str, list]]) -> tuple[bytes, int]:
    """Concatenate record chunks (column -> values, one list per chunk, columns may differ between chunks) into
    one Parquet file. Returns ``(bytes, rows)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names: dict[str, None] = {}
    for chunk in chunks:
        names.update(dict.fromkeys(chunk))
    counts = [len(next(iter(chunk.values()))) if chunk else 0 for chunk in chunks]
    arrays = {}
    for name in names:
        values: list = []
        for chunk, count in zip(chunks, counts, strict=True):
            values.extend(chunk.get(name, [None] * count))
        if name.startswith(("e.", "r.")):
            values = [None if v is None else np.asarray(v, np.float32) for v in values]
            arrays[name] = pa.array(values, type=pa.list_(pa.float32()))
            continue
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # numbers in one request, text in another: keep as text
            arrays[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    table = pa.table(arrays)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue(), table.num_rows


def write_segment(store: MonitorStore, blobs, service: str, kind: str, chunks: list[dict[str, list]],
                  source: str = "") -> int:
    """Store ``chunks`` as one Parquet segment and index it. Returns the rows written (0: nothing to write)."""
    chunks = [c for c in chunks if c and len(next(iter(c.values())))]
    if not chunks:
        return 0
    data, rows = columns_to_parquet(chunks)
    stamps = [t for chunk in chunks for t in chunk["ts"]]
    info = blobs.put_bytes(data)
    store.add_segment(service, kind, "sha256:" + info.digest, rows, min(stamps), max(stamps), source)
    return rows


def feedback_chunk(items: list[dict], now: float | None = None) -> dict[str, list]:
    """Feedback items (``{"request_id", "label", "row"?}``) as one record chunk; labels are kept as text."""
    now = time.time() if now is None else now
    return {"ts": [now] * len(items), "request_id": [str(i["request_id"]) for i in items],
            "row": [int(i.get("row") or 0) for i in items],
            "label": [i["label"] if isinstance(i["label"], str) else json.dumps(i["label"]) for i in items]}


class Capture:
    """The capture of one replica.

    Args:
        service: the service name.
        source: who writes (``replica-3``), recorded with each segment.
        engine: the workspace database (settings are re-read every few seconds; segments are indexed there).
        blobs: the workspace blob store.
        signatures: version ref -> Signature (to name predicted classes).
        stats_path: a JSON file the thread rewrites with its counters (``modelyard monitor status`` reads it).
    """

    def __init__(self, service: str, source: str, engine, blobs, signatures: dict, stats_path: Path | None = None):
        self.service = service
        self.source = source
        self.store = MonitorStore(engine)
        self.blobs = blobs
        self.signatures = signatures
        self.stats_path = stats_path
        self.settings = MonitorSettings()
        self.enabled = False
        self.rate = 0.0
        self.limit = 0
        self._queue: collections.deque = collections.deque()
        self._feedback: collections.deque = collections.deque()
        self.counters = {"offered": 0, "captured": 0, "dropped_full": 0, "written_rows": 0, "segments": 0,
                         "summarized": 0, "errors": 0, "feedback": 0}
        # bytes of inputs held, as two counters each written by one thread only (no lost updates without a lock)
        self._bytes_in = 0  # the request path
        self._bytes_out = 0  # the capture thread, once written
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._settings_read = 0.0

    # -- the request path (cheap, never raises) -----------------------------------------------------------------
    def offer(self, request_id: str, ref: str, feeds: dict | None, outputs: dict | None, rows: int,
              latency_s: float, status: int) -> None:
        """Queue one request for capture, if sampled and there is room."""
        if not self.enabled or (self.rate < 1.0 and random.random() >= self.rate):
            return
        self.counters["offered"] += 1
        size = sum(getattr(v, "nbytes", 0) for v in feeds.values()) if feeds else 0
        if len(self._queue) >= self.limit or self._bytes_in - self._bytes_out + size > MAX_HELD_BYTES:
            self.counters["dropped_full"] += 1
            return
        self._bytes_in += size
        self._queue.append((time.time(), request_id, ref, feeds, outputs, rows, latency_s, status, size))

    def offer_feedback(self, items: list[dict]) -> None:
        """Queue feedback items (``{"request_id", "label", "row"?}``); they are kept whether capture is on or not
        (a label may arrive after capture was turned off)."""
        self._feedback.append(feedback_chunk(items))
        self.counters["feedback"] += len(items)
        self._wake.set()

    # -- the thread ---------------------------------------------------------------------------------------------
    def start(self) -> Capture:
        self._refresh_settings(force=True)
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.service}", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _refresh_settings(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._settings_read < SETTINGS_REFRESH_S:
            return
        self._settings_read = now
        try:
            settings = self.store.settings(self.service)
        except Exception:  # noqa: BLE001 - a database hiccup keeps the last settings
            log.exception("capture: cannot read the monitoring settings of %s", self.service)
            return
        self.settings = settings
        self.limit = settings.queue_size
        self.rate = settings.sample_rate
        self.enabled = settings.enabled and settings.sample_rate > 0

    def _run(self) -> None:
        import pyarrow.parquet  # noqa: F401 - its first use imports pandas (~1 s): now, not on the first segment

        raw: list[tuple] = []
        raw_rows, raw_bytes, oldest = 0, 0, None
        while True:
            stopping = self._stop.is_set()
            self._wake.wait(min(self.settings.flush_s, 1.0))
            self._wake.clear()
            self._refresh_settings()
            while self._queue:
                *item, size = self._queue.popleft()
                raw.append(tuple(item))
                raw_rows += max(item[5], 1)
                raw_bytes += size
                oldest = oldest if oldest is not None else time.monotonic()
            if raw and (stopping or raw_rows >= SEGMENT_ROWS or raw_bytes >= MAX_HELD_BYTES // 2
                        or time.monotonic() - oldest >= self.settings.flush_s):
                self._write("traffic", self._records(raw))
                self._bytes_out += raw_bytes
                raw, raw_rows, raw_bytes, oldest = [], 0, 0, None
            feedback = []
            while self._feedback:
                feedback.append(self._feedback.popleft())
            if feedback:
                self._write("feedback", feedback)
            self._write_stats()
            if stopping:
                return

    def _records(self, raw: list[tuple]) -> list[dict]:
        """Record chunks of queued requests. Requests to the same version with the same inputs are stacked and
        summarized together (a few numpy calls per segment instead of per request: the thread holds the GIL the
        event loop needs as little as it can); a group that cannot be stacked (dynamic trailing dims) is
        summarized request by request."""
        groups: dict[tuple, list[tuple]] = {}
        chunks = []
        for item in raw:
            _, _, ref, feeds, outputs, rows, _, status = item
            if feeds is None or status >= 400 or rows <= 0:
                chunks.append(self._record(*item))
                continue
            key = (ref, tuple(feeds), tuple(outputs) if outputs is not None else None)
            groups.setdefault(key, []).append(item)
        for items in groups.values():
            try:
                chunks.append(self._stacked(items))
            except (ValueError, TypeError):
                chunks.extend(self._record(*item) for item in items)
        return [c for c in chunks if c]

    def _stacked(self, items: list[tuple]) -> dict:
        import numpy as np

        ref = items[0][2]
        counts = [item[5] for item in items]
        total = sum(counts)
        feeds = {name: np.concatenate([np.asarray(item[3][name]) for item in items])
                 for name in items[0][3]}
        chunk: dict[str, list] = {
            "ts": np.repeat([item[0] for item in items], counts).tolist(),
            "request_id": [rid for item, n in zip(items, counts, strict=True) for rid in [item[1]] * n],
            "row": [r for n in counts for r in range(n)], "model": [ref] * total,
            "latency_ms": np.repeat([item[6] * 1000.0 for item in items], counts).tolist(),
            "status": [200] * total}
        columns, summarized = summarize_inputs(feeds, total, self.settings.max_record_bytes)
        chunk.update(columns)
        if items[0][4] is not None:
            outputs = {name: np.concatenate([np.asarray(item[4][name]) for item in items]) for name in items[0][4]}
            chunk.update(summarize_outputs(self.signatures.get(ref), outputs, total))
        self.counters["summarized"] += summarized * len(items)
        self.counters["captured"] += len(items)
        return chunk

    def _record(self, ts, request_id, ref, feeds, outputs, rows, latency_s, status) -> dict | None:
        try:
            rows = rows if feeds is not None and rows > 0 else 1
            chunk: dict[str, list] = {"ts": [ts] * rows, "request_id": [request_id] * rows,
                                      "row": list(range(rows)), "model": [ref] * rows,
                                      "latency_ms": [latency_s * 1000.0] * rows, "status": [status] * rows}
            if feeds is not None and status < 400:
                columns, summarized = summarize_inputs(feeds, rows, self.settings.max_record_bytes)
                self.counters["summarized"] += summarized
                chunk.update(columns)
                if outputs is not None:
                    chunk.update(summarize_outputs(self.signatures.get(ref), outputs, rows))
            self.counters["captured"] += 1
            return chunk
        except Exception:  # noqa: BLE001 - one odd request is not worth the capture thread
            self.counters["errors"] += 1
            log.exception("capture: cannot record a request of %s", self.service)
            return None

    def _write(self, kind: str, chunks: list[dict]) -> None:
        try:
            rows = write_segment(self.store, self.blobs, self.service, kind, chunks, self.source)
            if kind == "traffic":
                self.counters["written_rows"] += rows
            self.counters["segments"] += 1
        except Exception:  # noqa: BLE001 - the blob store or database is down: these records are lost, counted
            self.counters["errors"] += 1
            log.exception("capture: cannot write a %s segment of %s", kind, self.service)

    def _write_stats(self) -> None:
        if self.stats_path is None:
            return
        from modelyard.deploy.state import write_json_atomic

        try:
            write_json_atomic(self.stats_path, {**self.counters, "queued": len(self._queue),
                                                "enabled": self.enabled, "sample_rate": self.rate,
                                                "updated_at": time.time()})
        except OSError:
            log.exception("capture: cannot write %s", self.stats_path)


def capture_stats(service_folder: Path) -> dict:
    """The counters of every replica's capture of a service, summed (files under ``<service>/capture/``)."""
    total: dict[str, float] = {}
    for path in sorted((service_folder / "capture").glob("replica-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for key, value in data.items():
            # booleans sum too: "enabled" is then the number of replicas capturing
            if isinstance(value, int | float) and key not in ("updated_at", "sample_rate"):
                total[key] = total.get(key, 0) + int(value) if isinstance(value, bool) else \
                    total.get(key, 0) + value
    return total


MAX_FEEDBACK_ITEMS = 10_000


def parse_feedback(body) -> list[dict]:
    """Feedback items from a request body: ``{"request_id", "label", "row"?}`` or ``{"items": [...]}`` of them.
    Raises InvalidInput naming the first bad item."""
    from modelyard.core.errors import InvalidInput

    if not isinstance(body, dict):
        raise InvalidInput('feedback: a JSON object {"request_id": ..., "label": ...} or {"items": [...]}')
    items = body.get("items") if "items" in body else [body]
    if not isinstance(items, list) or not items:
        raise InvalidInput("feedback: items must be a non-empty list")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise InvalidInput(f"feedback: at most {MAX_FEEDBACK_ITEMS} items per request, not {len(items)}")
    clean = []
    for number, item in enumerate(items):
        where = f"feedback item {number}" if "items" in body else "feedback"
        if not isinstance(item, dict) or set(item) - {"request_id", "label", "row"}:
            raise InvalidInput(f"{where}: takes request_id, label and optionally row")
        request_id, label, row = item.get("request_id"), item.get("label"), item.get("row", 0)
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
            raise InvalidInput(f"{where}: request_id must be the text of an x-modelyard-request-id header "
                               f"(1-{MAX_REQUEST_ID_CHARS} characters)")
        if isinstance(label, bool) or not isinstance(label, str | int | float) or \
                (isinstance(label, float) and label != label) or (isinstance(label, str) and len(label) > 1000):
            raise InvalidInput(f"{where}: label must be the true class name or number")
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < 1_000_000:
            raise InvalidInput(f"{where}: row must be the row's index in the request (0 for one-row requests)")
        clean.append({"request_id": request_id, "label": label, "row": row})
    return clean


def observe(capture: Capture, request, response, ref: str | None, feeds, outputs, rows: int, elapsed: float,
            status: int) -> None:
    """The request path's one call: give the response its request id (the caller's ``x-modelyard-request-id``
    or a new one) and offer the request to the capture. Never raises."""
    import secrets

    try:
        request_id = (request.headers.get(REQUEST_ID_HEADER) or secrets.token_hex(8))[:MAX_REQUEST_ID_CHARS]
        response.headers[REQUEST_ID_HEADER] = request_id
        capture.offer(request_id, ref or "none", feeds, outputs, rows, elapsed, status)
    except Exception:  # noqa: BLE001 - capture must never fail a request
        capture.counters["errors"] += 1


def feedback_endpoint(server, authorize):
    """``POST /v1/feedback`` of a replica: queue the labels for the capture thread (202)."""
    from starlette.responses import JSONResponse

    from modelyard.core.errors import ModelyardError, Unavailable

    async def feedback(request):
        try:
            await authorize(request)
            capture = getattr(server, "capture", None)
            if capture is None:
                raise Unavailable("this replica keeps no capture")
            body = await request.body()
            if len(body) > 8 * 1024 * 1024:
                from modelyard.core.errors import PayloadTooLarge

                raise PayloadTooLarge("feedback body exceeds 8 MiB; send it in parts")
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                from modelyard.core.errors import InvalidInput

                raise InvalidInput("feedback: the body is not JSON") from None
            items = parse_feedback(parsed)
            capture.offer_feedback(items)
        except ModelyardError as exc:
            return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status)
        return JSONResponse({"schema": "modelyard.feedback/1", "accepted": len(items)}, status_code=202)

    return feedback
