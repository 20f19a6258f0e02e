"""A service's monitoring report: its captured traffic cut into windows (by row count or by time), each window
judged against the reference for drift (features, predictions, embeddings), data quality, performance (real and
estimated), latency and errors.

Collect, then judge: :func:`~.segments.load_columns` reads the segments, :func:`judge_window` turns one window
into a dict, :func:`build_report` puts them together; alert rules (:mod:`.alerts`) read the same report.
"""

from __future__ import annotations

import time

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.deploy.monitoring import drift, performance, quality
from modelyard.deploy.monitoring.segments import MAX_LOADED_ROWS, load_columns
from modelyard.deploy.monitoring.store import MonitorSettings, MonitorStore, parse_duration

SCHEMA = "modelyard.monitor-report/1"
MAX_WINDOWS = 100


def _take(columns: dict[str, np.ndarray], index) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in columns.items()}


def split_windows(columns: dict[str, np.ndarray], window: int | str, count: int) -> list[tuple[float, float, slice]]:
    """The last ``count`` windows: ``(start ts, end ts, rows)``; by rows (an int) or by time (``"1h"``)."""
    if not columns or not len(columns["ts"]):
        return []
    ts = columns["ts"]
    if isinstance(window, int):
        edges = list(range(len(ts), 0, -window))[:count]
        out = [(max(0, end - window), end) for end in edges]
    else:
        width = parse_duration(window)
        last = float(ts[-1])
        out = []
        end_time = (np.floor(last / width) + 1) * width
        for _ in range(count):
            start_time = end_time - width
            lo, hi = int(np.searchsorted(ts, start_time, "left")), int(np.searchsorted(ts, end_time, "left"))
            if hi > lo:
                out.append((lo, hi))
            if lo == 0:
                break
            end_time = start_time
    return [(float(ts[lo]), float(ts[hi - 1]), slice(lo, hi)) for lo, hi in reversed(out)]


def _importance(name: str, window: dict[str, np.ndarray]) -> float:
    """How much the model's output follows a feature in this window: |Spearman correlation| with the predicted
    score (numbers) or the correlation ratio (categories); 1.0 when the model gives no score."""
    target = window.get("p.score", window.get("p.value"))
    values = window.get(name)
    if target is None or values is None or values.ndim != 1 or len(values) < 3:
        return 1.0
    target = np.asarray(target, np.float64)
    if values.dtype.kind == "f":
        ok = np.isfinite(values) & np.isfinite(target)
        if ok.sum() < 3 or np.std(values[ok]) == 0 or np.std(target[ok]) == 0:
            return 0.0
        from scipy import stats

        rho = stats.spearmanr(values[ok], target[ok]).statistic
        return float(abs(rho)) if np.isfinite(rho) else 0.0
    ok = np.isfinite(target)
    groups: dict[str, list] = {}
    for value, score in zip(values[ok].tolist(), target[ok].tolist(), strict=True):
        groups.setdefault(str(value), []).append(score)
    total = target[ok]
    if len(total) < 3 or total.var() == 0:
        return 0.0
    between = sum(len(g) * (np.mean(g) - total.mean()) ** 2 for g in groups.values()) / len(total)
    return float(np.sqrt(between / total.var()))


def judge_window(window: dict[str, np.ndarray], reference: dict[str, np.ndarray], settings: MonitorSettings,
                 labels: list, label_times: list, calibration=None, calibration_rows: int = 0) -> dict:
    """One window's verdicts as a dict (drift per feature ranked by estimated impact, predictions, embeddings,
    data quality, performance, latency, errors)."""
    ok = window["status"] < 400 if "status" in window else np.ones(len(window["ts"]), bool)
    rows = int(len(window["ts"]))
    served = _take(window, ok)
    options = {"min_rows": settings.min_rows, "alpha": settings.alpha, "min_effect": settings.min_effect}
    inputs = {k: v for k, v in served.items() if k.startswith(("f.", "s.", "e."))}
    outputs = {k: v for k, v in served.items() if k in ("p.class", "p.value")}
    tests = drift.detect({k: v for k, v in reference.items()}, {**inputs, **outputs}, **options)
    features, predictions, embeddings = [], [], []
    for test in tests:
        entry = test.to_dict()
        if test.feature.startswith("p."):
            predictions.append(entry)
        elif test.kind == "embedding":
            embeddings.append(entry)
        else:
            importance = _importance(test.feature, served)
            entry["importance"] = round(importance, 6)
            entry["impact"] = round((test.effect or 0.0) * importance, 6)
            features.append(entry)
    features.sort(key=lambda f: (not f["drifted"], -(f["impact"] or 0.0), f["feature"]))
    judged = [f for f in features if f["status"] != "insufficient"]
    checks = [c.to_dict() for c in quality.data_quality(reference, served, settings.alpha)]
    served_labels = [label for label, keep in zip(labels, ok, strict=True) if keep]
    served_times = [t for t, keep in zip(label_times, ok, strict=True) if keep]
    perf = performance.window_performance(served, served_labels, served_times, calibration, calibration_rows)
    latency = window.get("latency_ms", np.zeros(0))[ok] if "latency_ms" in window else np.zeros(0)

    def share(key: str) -> float | None:
        values = [c[key] for c in checks if c.get(key) is not None]
        return round(float(max(values)), 6) if values else None

    return {
        "start": float(window["ts"][0]), "end": float(window["ts"][-1]), "rows": rows,
        "served_rows": int(ok.sum()),
        "sufficient": int(ok.sum()) >= settings.min_rows,
        "drift_share": round(sum(f["drifted"] for f in judged) / len(judged), 6) if judged else None,
        "dataset_drift": bool(judged) and sum(f["drifted"] for f in judged) / len(judged) >= 0.5,
        "drifted_features": [f["feature"] for f in features if f["drifted"]],
        "features": features, "predictions": predictions, "embeddings": embeddings,
        "quality": checks,
        "quality_issues": [f"{c['feature']}: {issue}" for c in checks for issue in c["issues"]],
        "missing_share": share("missing_share"), "out_of_range_share": share("out_of_range_share"),
        "unseen_share": share("unseen_share"),
        "performance": perf.to_dict(),
        "latency_p50_ms": round(float(np.percentile(latency, 50)), 3) if len(latency) else None,
        "latency_p95_ms": round(float(np.percentile(latency, 95)), 3) if len(latency) else None,
        "error_rate": round(1.0 - float(ok.mean()), 6) if rows else None,
    }


def build_report(workspace, service: str, window: int | str | None = None, windows: int = 12,
                 until: float | None = None, settings: MonitorSettings | None = None) -> dict:
    """The report of ``service``'s last ``windows`` windows (see the module docstring).

    Args:
        window: rows per window or a duration (default: the service's setting).
        windows: how many windows, newest last (1-100). Default 12.
        until: judge the traffic up to this epoch time (default: now).
        settings: the service's monitoring settings (default: read them).
    """
    from modelyard.deploy.monitoring.capture import capture_stats
    from modelyard.deploy.monitoring.reference import load_reference
    from modelyard.deploy.state import service_dir

    if not 1 <= windows <= MAX_WINDOWS:
        raise InvalidInput(f"windows: between 1 and {MAX_WINDOWS}, not {windows}")
    store = MonitorStore(workspace.engine)
    settings = settings or store.settings(service)
    window = settings.window if window is None else window
    store.prune(service, settings.retention_days)
    folder = service_dir(workspace.home, service)
    now = until if until is not None else time.time()
    if isinstance(window, int):
        since, max_rows = None, min(MAX_LOADED_ROWS, window * (windows + 4))
    else:
        since, max_rows = now - parse_duration(window) * (windows + 1), MAX_LOADED_ROWS
    traffic = load_columns(workspace, service, "traffic", since, now, max_rows)
    report = {"schema": SCHEMA, "service": service, "generated_at": time.time(), "window": window,
              "settings": settings.model_dump(), "capture": capture_stats(folder), "reference": None,
              "windows": [], "latest": None}
    if not traffic:
        report["message"] = ("no captured traffic yet" if settings.enabled else
                             "capture is off: 'modelyard monitor enable " + service + "'")
        return report
    reference = load_reference(workspace, service, settings.reference, folder / "monitoring")
    report["reference"] = {"source": reference.source, "rows": reference.rows}
    first = float(traffic["ts"][0])
    feedback = load_columns(workspace, service, "feedback", first - 1.0, None)
    labels, label_times = performance.join_labels(list(traffic["request_id"]), list(traffic["row"]), feedback)
    for _start, _end, rows in split_windows(traffic, window, windows):
        before = slice(0, rows.start)
        calibration, calibration_rows = performance.calibration_from(_take(traffic, before), labels[before])
        judged = judge_window(_take(traffic, rows), reference.columns, settings, labels[rows], label_times[rows],
                              calibration, calibration_rows)
        report["windows"].append(judged)
    report["latest"] = report["windows"][-1] if report["windows"] else None
    return report


def summary_line(window: dict) -> str:
    """One line per window, for the CLI."""
    perf = window["performance"]
    acc = perf.get("accuracy")
    est = perf.get("estimated_accuracy")
    parts = [f"{window['rows']} rows",
             f"drift {len(window['drifted_features'])}/{len(window['features'])}"
             + (f" ({', '.join(window['drifted_features'][:3])})" if window["drifted_features"] else ""),
             f"accuracy {acc:.3f}" if acc is not None else "accuracy -",
             f"estimated {est:.3f}" if est is not None else "estimated -",
             f"labelled {perf['coverage']:.0%}",
             f"p95 {window['latency_p95_ms']:.1f} ms" if window["latency_p95_ms"] is not None else "p95 -"]
    if window["quality_issues"]:
        parts.append(f"{len(window['quality_issues'])} quality issue(s)")
    if not window["sufficient"]:
        parts.append("too few rows to judge")
    return ", ".join(parts)
