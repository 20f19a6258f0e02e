from __future__ import annotations

import pytest

from modelyard.edge.skills.planner import (
    Measurements,
    batch_fit,
    batch_time,
    load_per_second,
    mean_batch,
    measure_decode,
    plan_capacity,
    predict_channels,
)

M = Measurements(decode_fps=500.0, batch_seconds={1: 0.02, 2: 0.03, 4: 0.05, 8: 0.09}, width=640, height=360)


def test_batch_time_is_a_line_fitted_through_the_measurements():
    # M's times are 10 ms per batch + 10 ms per frame
    assert batch_time(M.batch_seconds, 3) == pytest.approx(0.04)
    assert batch_time(M.batch_seconds, 16) == pytest.approx(0.17)
    # one lucky (or unlucky) size does not bend the curve: the fit stays close to the other sizes' line
    noisy = {**M.batch_seconds, 8: 0.06}
    assert batch_fit(noisy)[1] > 0.005 and batch_time(noisy, 16) > 0.1


def test_load_adds_decode_of_every_frame_and_the_batches_the_muxer_makes():
    # 4 channels at 5 fps: 20 frames/s; a 10 ms + 10 ms/frame batch, 10 ms wait: b = 20 * 0.02 / 0.8 < 1 -> one
    # frame a batch; 4*25/500 = 0.2 decode + 20 batches * 20 ms = 0.4 inference
    assert mean_batch(M, 4, 5) == pytest.approx(1.0)
    assert load_per_second(M, 4, 25, 5) == pytest.approx(0.6)
    # 40 channels: 200 frames/s * 10 ms per frame saturates the device: every batch holds all 40
    assert mean_batch(M, 40, 5) == 40
    assert load_per_second(M, 40, 25, 5) == pytest.approx(2.0 + 5 * 0.41)


def test_rgb_conversion_is_charged_to_the_sampled_frames_only():
    converting = Measurements(decode_fps=500.0, batch_seconds=M.batch_seconds, width=640, height=360,
                              convert_seconds=0.004)
    # 4 channels: 0.2 decode + 4 channels * 5 sampled frames * 4 ms = 0.08 conversion + 0.4 inference
    assert load_per_second(converting, 4, 25, 5) == pytest.approx(0.68)
    assert load_per_second(converting, 4, 25, 5) - load_per_second(M, 4, 25, 5) == pytest.approx(0.08)


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
