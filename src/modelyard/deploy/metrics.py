"""Prometheus metrics of a service, shared by all its replicas through prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` is set by the supervisor before a replica starts), so ``/metrics`` on any replica
reports the whole service. Every series carries the model version (``N@V``) it is about."""

from __future__ import annotations

from pathlib import Path

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServiceMetrics:
    """The metric families; created once per replica process."""

    def __init__(self):
        from prometheus_client import Counter, Gauge, Histogram

        labels = ["service", "version"]
        # registry=None: the values live in the multiprocess files render() reads; no process-global registration,
        # so a process (a test) may build more than one ModelServer
        unregistered = {"registry": None}
        self.requests = Counter("modelyard_requests", "Predict requests by version and HTTP status.",
                                [*labels, "code"], **unregistered)
        self.errors = Counter("modelyard_errors", "Predict requests that failed, by reason.", [*labels, "reason"],
                              **unregistered)
        self.latency = Histogram("modelyard_request_latency_seconds", "Predict latency from body read to response.",
                                 labels, buckets=LATENCY_BUCKETS, **unregistered)
        self.batch_size = Histogram("modelyard_batch_size", "Rows per inference (dynamic batching).", labels,
                                    buckets=BATCH_BUCKETS, **unregistered)
        self.batch_requests = Histogram("modelyard_batch_requests", "Requests stacked into one inference.", labels,
                                        buckets=BATCH_BUCKETS, **unregistered)
        self.inference = Histogram("modelyard_inference_seconds", "Time of one (batched) inference.", labels,
                                   buckets=LATENCY_BUCKETS, **unregistered)
        self.queue_depth = Gauge("modelyard_queue_depth", "Requests waiting for the model.", labels,
                                 multiprocess_mode="livesum", **unregistered)


def render(metrics_dir: Path) -> bytes:
    """The text exposition of every replica's metrics in ``metrics_dir``."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(metrics_dir))
    return generate_latest(registry)


def mark_dead(metrics_dir: Path, pid: int) -> None:
    """Drop a dead replica's live gauges (its counters stay: they are history)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path=str(metrics_dir))
