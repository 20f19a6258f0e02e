"""The metrics AutoML optimises and evaluation reports, computed from labels and predicted probabilities/values.

Every metric has a direction; ``score(name, ...)`` returns the metric's natural value and ``higher_is_better(name)``
says which way is good, so leaderboards sort correctly for losses and errors alike.
"""

from __future__ import annotations

import numpy as np

from modelyard.core.errors import InvalidInput

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("r2", "rmse", "mae")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse"})
DEFAULT_METRIC = {"classification": "accuracy", "regression": "r2", "image-classification": "accuracy"}


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def check_metric(metric: str | None, task: str) -> str:
    """The metric to optimise for ``task`` (its default when ``metric`` is None)."""
    if metric is None:
        return DEFAULT_METRIC[task]
    allowed = REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS
    if metric not in allowed:
        raise InvalidInput(f"metric {metric!r} does not fit a {task} task; use one of {', '.join(allowed)}")
    return metric


def score(metric: str, y_true: np.ndarray, prediction: np.ndarray, n_classes: int | None = None) -> float:
    """The value of ``metric``. For classification ``prediction`` holds probabilities ``(N, K)``; for regression
    the predicted values ``(N,)``."""
    from sklearn import metrics as m

    if metric in REGRESSION_METRICS:
        pred = np.asarray(prediction, dtype=np.float64).reshape(-1)
        if metric == "r2":
            return float(m.r2_score(y_true, pred))
        if metric == "rmse":
            return float(np.sqrt(m.mean_squared_error(y_true, pred)))
        return float(m.mean_absolute_error(y_true, pred))
    proba = np.asarray(prediction, dtype=np.float64)
    labels = np.arange(n_classes or proba.shape[1])
    pred = proba.argmax(axis=1)
    if metric == "accuracy":
        return float((pred == y_true).mean())
    if metric == "balanced_accuracy":
        present = np.unique(y_true)
        return float(np.mean([(pred[y_true == c] == c).mean() for c in present]))
    if metric == "f1_macro":
        return float(m.f1_score(y_true, pred, labels=np.unique(y_true), average="macro", zero_division=0))
    if metric == "log_loss":
        clipped = np.clip(proba, 1e-15, 1.0)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        return float(m.log_loss(y_true, clipped, labels=labels))
    if metric == "roc_auc":
        return roc_auc(y_true, proba)
    raise InvalidInput(f"unknown metric {metric!r}")


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Binary AUC, or the macro one-vs-rest AUC over the classes present; NaN when only one class is present."""
    from sklearn import metrics as m

    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(m.roc_auc_score(y_true, proba[:, 1]))
    aucs = [m.roc_auc_score(y_true == c, proba[:, c]) for c in present]
    return float(np.mean(aucs))


def classification_report(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro F1/precision/recall, ROC AUC, log loss, per-class precision/recall/F1/support, the
    confusion matrix and the expected calibration error."""
    from sklearn import metrics as m

    labels = np.arange(len(classes))
    pred = proba.argmax(axis=1)
    precision, recall, f1, support = m.precision_recall_fscore_support(y_true, pred, labels=labels, zero_division=0)
    present = support > 0
    return {
        "accuracy": float((pred == y_true).mean()),
        "balanced_accuracy": score("balanced_accuracy", y_true, proba),
        "f1_macro": float(f1[present].mean()) if present.any() else 0.0,
        "precision_macro": float(precision[present].mean()) if present.any() else 0.0,
        "recall_macro": float(recall[present].mean()) if present.any() else 0.0,
        "roc_auc": roc_auc(y_true, proba),
        "log_loss": score("log_loss", y_true, proba, len(classes)),
        "ece": expected_calibration_error(y_true, proba),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": m.confusion_matrix(y_true, pred, labels=labels).tolist(),
    }


def regression_report(y_true: np.ndarray, pred: np.ndarray) -> dict:
    from sklearn import metrics as m

    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    mse = float(m.mean_squared_error(y_true, pred))
    return {"mae": float(m.mean_absolute_error(y_true, pred)), "mse": mse, "rmse": float(np.sqrt(mse)),
            "r2": float(m.r2_score(y_true, pred))}


def calibration_bins(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability diagram data: per confidence bin, the mean confidence of the top class and its accuracy."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        mask = (confidence > low) & (confidence <= high) if low > 0 else (confidence >= low) & (confidence <= high)
        if mask.any():
            out.append({"low": float(low), "high": float(high), "count": int(mask.sum()),
                        "confidence": float(confidence[mask].mean()), "accuracy": float(correct[mask].mean())})
    return out


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    total = len(y_true)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"])
                     for b in calibration_bins(y_true, proba, bins))) if total else 0.0
