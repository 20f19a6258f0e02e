"""A service's traffic over time from its access log (one JSON line per predict request): requests per second,
p50/p95 latency, errors and rows per request in equal time buckets. The console's service charts and
``GET /api/v1/services/{name}/stats`` read this."""

from __future__ import annotations

import json
import math
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.deploy.state import service_dir, tail

MAX_LINES = 50_000


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def access_stats(home: Path, name: str, buckets: int = 60, lines: int = 20_000) -> dict:
    """Traffic of service ``name`` over its last ``lines`` requests, in ``buckets`` equal time slices.

    Returns:
        ``{"schema": "modelyard.service-stats/1", "service", "requests", "from", "to", "bucket_s", "series":
        [{"t", "requests", "rps", "p50_ms", "p95_ms", "errors", "rows"}], "by_model": {ref: requests}}``;
        ``t`` is the bucket's start (unix seconds); latency and rows are over successful requests.
    """
    if not 1 <= buckets <= 1000 or not 1 <= lines <= MAX_LINES:
        raise InvalidInput(f"buckets must be 1-1000 and lines 1-{MAX_LINES}")
    records = []
    for line in tail(service_dir(home, name) / "access.log", lines).splitlines():
        try:
            record = json.loads(line)
            records.append((float(record["ts"]), record))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a crash mid-write is not traffic
    out = {"schema": "modelyard.service-stats/1", "service": name, "requests": len(records), "series": [],
           "by_model": {}}
    if not records:
        return {**out, "from": None, "to": None, "bucket_s": None}
    start, end = min(t for t, _ in records), max(t for t, _ in records)
    width = max(1.0, (end - start) / buckets)
    slots: list[list[dict]] = [[] for _ in range(buckets)]
    for t, record in records:
        slots[min(buckets - 1, int((t - start) / width))].append(record)
        model = str(record.get("model"))
        out["by_model"][model] = out["by_model"].get(model, 0) + 1
    for index, slot in enumerate(slots):
        ok = [r for r in slot if int(r.get("status", 500)) < 400]
        latencies = [float(r["ms"]) for r in ok if r.get("ms") is not None]
        rows = [float(r["rows"]) for r in ok if isinstance(r.get("rows"), (int, float))]
        out["series"].append({
            "t": round(start + index * width, 3), "requests": len(slot), "rps": round(len(slot) / width, 4),
            "p50_ms": _quantile(latencies, 0.5) if latencies else None,
            "p95_ms": _quantile(latencies, 0.95) if latencies else None,
            "errors": len(slot) - len(ok), "rows": round(sum(rows) / len(rows), 3) if rows else None})
    return {**out, "from": start, "to": end, "bucket_s": round(width, 3)}
