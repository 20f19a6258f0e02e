"""Performance of a window: the real metric from feedback labels, and the estimate without them (CBPE).

Labels arrive late, or never: feedback (``POST /v1/feedback``: request id + true label) is joined to the captured
predictions by request id and row, whenever it came, so a window's accuracy fills in as its labels arrive and
``coverage`` says how much of it is labelled. Until then NannyML's confidence-based performance estimation (CBPE)
estimates it: with calibrated probabilities the expected accuracy of a prediction is its probability of being
right, so a window's expected accuracy is the mean of its (calibrated) top-class probabilities. Calibration is an
isotonic fit of "was the top class right" on the top-class probability over the labelled predictions *before* the
window (never its own labels); with fewer than ``MIN_CALIBRATION`` of them the model's probabilities are used as
given, and the report says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_CALIBRATION = 50
MIN_LABELLED = 10


@dataclass(frozen=True)
class Performance:
    """One window's performance. ``accuracy`` (classification) or ``mae``/``rmse`` (regression) come from
    labels (None below MIN_LABELLED labelled rows); ``estimated_accuracy`` from CBPE (classifiers with scores)."""

    task: str
    rows: int
    labelled: int
    coverage: float
    accuracy: float | None = None
    estimated_accuracy: float | None = None
    estimated_accuracy_std: float | None = None
    calibration: str = "none"
    mae: float | None = None
    rmse: float | None = None
    label_delay_s_p50: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def join_labels(request_ids: list, rows: list, feedback: dict[str, list] | None) -> tuple[list, list]:
    """``(labels, label times)`` aligned with the traffic rows (None where no feedback came); the latest
    feedback for a (request id, row) wins."""
    if not feedback or feedback.get("request_id") is None or not len(feedback["request_id"]):
        return [None] * len(request_ids), [None] * len(request_ids)
    latest: dict[tuple[str, int], tuple[float, str]] = {}
    for ts, rid, row, label in zip(feedback["ts"], feedback["request_id"], feedback["row"], feedback["label"],
                                   strict=True):
        key = (str(rid), int(row or 0))
        if key not in latest or latest[key][0] <= ts:
            latest[key] = (ts, label)
    found = [latest.get((str(rid), int(row or 0))) for rid, row in zip(request_ids, rows, strict=True)]
    return [f[1] if f else None for f in found], [f[0] if f else None for f in found]


def fit_calibration(scores: np.ndarray, correct: np.ndarray):
    """An isotonic map from top-class probability to the chance of being right, or None with too few rows."""
    if len(scores) < MIN_CALIBRATION or len(np.unique(correct)) < 2:
        return None
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(scores, correct.astype(np.float64))
    return model


def estimate_accuracy(scores: np.ndarray, calibration=None) -> tuple[float, float]:
    """CBPE: ``(expected accuracy, its standard deviation)`` from the top-class probabilities."""
    scores = np.clip(np.asarray(scores, np.float64), 0.0, 1.0)
    expected = calibration.predict(scores) if calibration is not None else scores
    n = max(len(expected), 1)
    return float(expected.mean()), float(np.sqrt(np.sum(expected * (1 - expected))) / n)


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def window_performance(window: dict[str, np.ndarray], labels: list, label_times: list,
                       calibration=None, calibration_rows: int = 0) -> Performance:
    """The performance of one window's rows (its ``p.*`` columns) given their joined labels."""
    rows = len(labels)
    have = [i for i, label in enumerate(labels) if label is not None]
    delays = [label_times[i] - float(window["ts"][i]) for i in have]
    delay = float(np.median(delays)) if delays else None
    common = {"rows": rows, "labelled": len(have), "coverage": len(have) / rows if rows else 0.0,
              "label_delay_s_p50": delay}
    if "p.class" in window:
        predicted = window["p.class"]
        accuracy = None
        if len(have) >= MIN_LABELLED:
            accuracy = float(np.mean([str(predicted[i]) == str(labels[i]).strip('"') for i in have]))
        estimate = std = None
        if "p.score" in window:
            scores = np.asarray(window["p.score"], np.float64)
            scores = scores[np.isfinite(scores)]
            if len(scores):
                estimate, std = estimate_accuracy(scores, calibration)
        how = f"isotonic on {calibration_rows} labelled predictions" if calibration is not None else \
            "the model's probabilities as given" if estimate is not None else "none"
        return Performance("classification", accuracy=accuracy, estimated_accuracy=estimate,
                           estimated_accuracy_std=std, calibration=how, **common)
    if "p.value" in window:
        pairs = [(float(window["p.value"][i]), _as_float(labels[i])) for i in have]
        pairs = [(p, t) for p, t in pairs if t is not None]
        if len(pairs) >= MIN_LABELLED:
            errors = np.array([p - t for p, t in pairs])
            return Performance("regression", mae=float(np.abs(errors).mean()),
                               rmse=float(np.sqrt((errors ** 2).mean())), **common)
        return Performance("regression", **common)
    return Performance("unknown", **common)


def calibration_from(history: dict[str, np.ndarray], labels: list):
    """``(calibration, rows)`` from labelled earlier predictions with scores (see :func:`fit_calibration`)."""
    if "p.class" not in history or "p.score" not in history:
        return None, 0
    have = [i for i, label in enumerate(labels) if label is not None and np.isfinite(history["p.score"][i])]
    if not have:
        return None, 0
    scores = np.array([history["p.score"][i] for i in have], np.float64)
    correct = np.array([str(history["p.class"][i]) == str(labels[i]).strip('"') for i in have])
    model = fit_calibration(scores, correct)
    return model, (len(have) if model is not None else 0)
