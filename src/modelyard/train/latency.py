"""Single-request latency of an ONNX model on onnxruntime, measured the way it will be served: batch of one,
CPU execution provider, one intra-op thread (so a busy neighbour core does not flatter or punish a candidate).

AutoML calls this inside the search: a candidate over the limit is rejected before it can win.
"""

from __future__ import annotations

import time

import numpy as np

WARMUP_RUNS = 5
MAX_RUNS = 200
MAX_SECONDS = 0.3


def session(model: bytes, threads: int = 1):
    """An onnxruntime CPU session (quiet: graph-cleanup warnings are not the user's business)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def measure_latency(model: bytes | object, feed: dict[str, np.ndarray], max_runs: int = MAX_RUNS,
                    max_seconds: float = MAX_SECONDS) -> dict:
    """Time ``feed`` (one request) on ``model`` (ONNX bytes or an existing session).

    Returns:
        ``{"p50_ms", "p95_ms", "runs"}``; ``p95_ms`` is what a latency limit is checked against.
    """
    sess = session(model) if isinstance(model, (bytes, bytearray)) else model
    for _ in range(WARMUP_RUNS):
        sess.run(None, feed)
    times = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < max_runs and (len(times) < 20 or time.perf_counter() < deadline):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    array = np.asarray(times)
    return {"p50_ms": round(float(np.percentile(array, 50)), 4), "p95_ms": round(float(np.percentile(array, 95)), 4),
            "runs": len(times)}
