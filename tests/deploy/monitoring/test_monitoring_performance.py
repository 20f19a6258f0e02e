"""Performance: labels joined by request id and row whenever they came, real accuracy beside CBPE's estimate, which
tracks the real accuracy of a calibrated model without labels and is recalibrated from earlier labels."""

import numpy as np
import pytest

from modelyard.deploy.monitoring.performance import (
    calibration_from,
    estimate_accuracy,
    join_labels,
    window_performance,
)


def _window(rng, rows, confidence):
    """A calibrated classifier: its top class is right with probability equal to its score."""
    scores = rng.uniform(confidence - 0.1, confidence + 0.1, rows)
    right = rng.random(rows) < scores
    truth = np.where(right, "a", "b")
    return {"ts": np.arange(rows, dtype=np.float64), "p.class": np.array(["a"] * rows, dtype=object),
            "p.score": scores}, truth


@pytest.mark.parametrize("confidence", [0.6, 0.9])
def test_cbpe_estimates_the_accuracy_the_labels_later_show(confidence):
    rng = np.random.default_rng(int(confidence * 10))
    window, truth = _window(rng, 2000, confidence)
    ids = [f"r{i}" for i in range(2000)]
    feedback = {"ts": [5000.0] * 1000, "request_id": ids[:1000], "row": [0] * 1000, "label": list(truth[:1000])}
    labels, times = join_labels(ids, [0] * 2000, feedback)
    perf = window_performance(window, labels, times)
    assert perf.labelled == 1000 and perf.coverage == 0.5 and perf.label_delay_s_p50 == pytest.approx(4500, abs=1)
    assert abs(perf.estimated_accuracy - perf.accuracy) < 0.05
    assert abs(perf.estimated_accuracy - confidence) < 0.02 and perf.calibration.startswith("the model's")


def test_an_overconfident_model_is_recalibrated_from_earlier_labels():
    rng = np.random.default_rng(3)
    history, truth = _window(rng, 1000, 0.7)
    history["p.score"] = np.clip(history["p.score"] + 0.25, 0, 1)  # claims 0.95, is right 70 % of the time
    calibration, rows = calibration_from(history, list(truth))
    assert rows == 1000
    window, _ = _window(rng, 500, 0.7)
    raw, _ = estimate_accuracy(np.clip(window["p.score"] + 0.25, 0, 1))
    fixed, _ = estimate_accuracy(np.clip(window["p.score"] + 0.25, 0, 1), calibration)
    assert raw > 0.9 and abs(fixed - 0.7) < 0.05


def test_the_latest_label_wins_and_regression_gets_errors():
    labels, _ = join_labels(["a", "a", "b"], [0, 1, 0], {"ts": [1.0, 2.0, 1.0], "request_id": ["a", "a", "a"],
                                                          "row": [0, 0, 1], "label": ["x", "y", "z"]})
    assert labels == ["y", "z", None]
    window = {"ts": np.zeros(20), "p.value": np.arange(20, dtype=np.float64)}
    perf = window_performance(window, [str(v + 1) for v in range(20)], [1.0] * 20)
    assert perf.task == "regression" and perf.mae == pytest.approx(1.0) and perf.rmse == pytest.approx(1.0)
