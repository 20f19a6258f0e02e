from __future__ import annotations

import pytest

from modelyard.edge.skills.planner import (
    Measurements,
    batch_time,
    load_per_second,
    measure_decode,
    plan_capacity,
    predict_channels,
)

M = Measurements(decode_fps=500.0, batch_seconds={1: 0.02, 2: 0.03, 4: 0.05, 8: 0.09}, width=640, height=360)


def test_batch_time_interpolates_and_extrapolates_per_frame():
    assert batch_time(M.batch_seconds, 3) == pytest.approx(0.04)
    assert batch_time(M.batch_seconds, 16) == pytest.approx(0.18)


def test_load_adds_decode_of_every_frame_and_one_batch_per_tick():
    # 4 channels: 4*25/500 = 0.2 decode + 5 * 0.05 inference = 0.45
    assert load_per_second(M, 4, 25, 5) == pytest.approx(0.45)


def test_rgb_conversion_is_charged_to_the_sampled_frames_only():
    converting = Measurements(decode_fps=500.0, batch_seconds=M.batch_seconds, width=640, height=360,
                              convert_seconds=0.004)
    # 4 channels: 0.2 decode + 4 channels * 5 sampled frames * 4 ms = 0.08 conversion + 0.25 inference
    assert load_per_second(converting, 4, 25, 5) == pytest.approx(0.53)
    assert predict_channels(converting, 25, 5) < predict_channels(M, 25, 5)


def test_decode_and_conversion_are_measured_apart():
    decode_fps, convert_s = measure_decode(160, 96, seconds=1, repeats=1)
    assert decode_fps > 0 and 0 < convert_s < 1


def test_prediction_is_the_largest_count_under_the_headroom():
    predicted = predict_channels(M, 25, 5, headroom=0.85)
    assert load_per_second(M, predicted, 25, 5) <= 0.85 < load_per_second(M, predicted + 1, 25, 5)


def test_plan_refuses_a_deployment_that_exceeds_the_device():
    plan = plan_capacity("unused.onnx", 40, measurements=M)
    assert not plan["fits"] and plan["predicted_channels"] < 40 and "holds" in plan["reason"]
    assert plan_capacity("unused.onnx", [{"fps": 5}] * 2, measurements=M)["fits"]
