from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard.data import hard_examples as platform
from modelyard.edge.skills.filters import UploadGate, average_hash, is_hard, prediction_confidence, prediction_entropy


def test_cross_entropy_filter_flags_unsure_classifications():
    assert prediction_entropy([1.0, 0.0]) == 0.0
    assert prediction_entropy([0.5, 0.5]) == pytest.approx(math.log(2))
    assert is_hard({"filter": "cross_entropy", "threshold": 0.5}, {"probabilities": [0.5, 0.5]})[0]
    assert not is_hard({"filter": "cross_entropy", "threshold": 0.5}, {"probabilities": [0.97, 0.03]})[0]


def test_ibt_compares_the_share_of_weak_boxes_with_the_image_threshold():
    rule = {"filter": "ibt", "box_threshold": 0.5, "img_threshold": 0.5}
    assert is_hard(rule, {"scores": [0.2, 0.3, 0.9]})[0]  # 2/3 weak
    assert not is_hard(rule, {"scores": [0.2, 0.8, 0.9]})[0]  # 1/3 weak
    assert is_hard(rule, {"scores": []})[0]  # found nothing: a labeler must confirm


def test_csf_flags_any_score_inside_the_band():
    rule = {"filter": "csf", "low": 0.3, "high": 0.6}
    assert is_hard(rule, {"scores": [0.95, 0.45]})[0]
    assert not is_hard(rule, {"scores": [0.95, 0.1]})[0]


@pytest.mark.parametrize("scores", [[0.2, 0.3, 0.9], [0.2, 0.8, 0.9], [0.5, 0.5], [], [0.31], [0.61, 0.99]])
def test_device_filters_decide_as_the_platform_filters_do(scores):
    boxes = [[0, 0, 1, 1, s, 0] for s in scores]
    assert is_hard({"filter": "ibt"}, {"scores": scores})[0] == platform.ibt_hard(boxes)
    assert is_hard({"filter": "csf"}, {"scores": scores})[0] == platform.csf_hard(boxes)


@pytest.mark.parametrize("probs", [[0.5, 0.5], [0.9, 0.1], [0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
def test_device_confidence_is_the_platform_confidence(probs):
    assert prediction_confidence(probs) == pytest.approx(float(platform.confidence([probs])[0]))
    assert is_hard({"filter": "cross_entropy"}, {"probabilities": probs})[0] == bool(
        platform.cross_entropy_hard([probs])[0])


def test_bad_rules_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown hard-example filter"):
        is_hard({"filter": "magic"}, {"scores": [0.5]})
    with pytest.raises(ValueError, match="needs the inference's box scores"):
        is_hard({"filter": "csf"}, {"probabilities": [0.5]})


def _frame(seed):
    return np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def test_upload_gate_deduplicates_and_bounds():
    now = [0.0]
    gate = UploadGate(max_per_minute=2, max_total=3, clock=lambda: now[0])
    a, b, c, d = (_frame(i) for i in range(4))
    assert gate.admit(a)
    assert not gate.admit(a.copy())  # the same picture again
    assert gate.admit(b)
    assert not gate.admit(c)  # third in one minute
    now[0] = 61.0
    assert gate.admit(c)
    assert not gate.admit(d)  # lifetime budget of 3 spent
    assert gate.counts == {"accepted": 3, "duplicate": 1, "rate_limited": 1, "budget": 1}


def test_average_hash_is_stable_under_small_noise_and_differs_between_pictures():
    frame = _frame(7)
    noisy = np.clip(frame.astype(int) + 3, 0, 255).astype(np.uint8)
    assert bin(average_hash(frame) ^ average_hash(noisy)).count("1") <= 2
    assert bin(average_hash(frame) ^ average_hash(_frame(8))).count("1") > 10
