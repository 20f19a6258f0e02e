from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.edge.skills.planner import (
    Measurements,
    PipelineTrials,
    batch_fit,
    batch_time,
    holds_real_time,
    load_per_second,
    mean_batch,
    measure_decode,
    next_count,
    plan_capacity,
    predict_channels,
    verify_channels,
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
    plan = plan_capacity("unused.onnx", 40, measurements=M, verify=False)
    assert not plan["fits"] and plan["predicted_channels"] < 40 and "holds" in plan["reason"]
    assert plan["model_channels"] == plan["predicted_channels"] and plan["trials"] == [] and not plan["verified"]
    assert plan_capacity("unused.onnx", [{"fps": 5}] * 2, measurements=M, verify=False)["fits"]


def _device(capacity: int, fps: float = 5.0):
    """A fake trial: ``capacity`` channels hold; beyond, the device gets ``capacity * fps`` frames/s through."""
    def trial(count: int) -> dict:
        through = min(count, capacity) * fps
        return {"channels": count, "fps": fps, "holds": count <= capacity, "frames_per_s": through,
                "worst_fps": through / count}
    return trial


def test_holding_real_time_means_nine_tenths_of_the_frames_and_no_channel_short_by_more_than_a_frame():
    # 1.5 s at 5 fps: 7.5 frame slots a channel, 90 % is 6.75
    assert holds_real_time({"a": 8, "b": 7, "c": 7}, 1.5, 5)
    assert holds_real_time({"a": 8, "b": 8, "c": 6}, 1.5, 5)  # one frame short: the window's rounding
    assert not holds_real_time({"a": 8, "b": 8, "c": 5}, 1.5, 5)  # one starved channel fails, whatever the total
    assert not holds_real_time({"a": 7, "b": 6, "c": 6}, 1.5, 5)  # 19 of 22.5 frames: the channels fell behind
    assert not holds_real_time({}, 1.5, 5)


def test_the_search_steps_up_from_a_count_that_held_and_down_to_what_a_failed_one_got_through():
    trial = _device(36)
    assert next_count([trial(20)], limit=256) == 40  # held: doubled
    # 50 failed, 36 * 5 frames/s got through: try 36 (at most 80 % of 50 = 40)
    assert next_count([trial(50)], limit=256) == 36
    assert next_count([trial(50), trial(36)], limit=256) == 43  # bracketed, and 36 held already: bisect
    assert next_count([trial(30), trial(45)], limit=256) == 36  # inside the bracket: what 45 got through
    assert next_count([trial(36), trial(37)], limit=256) is None  # 1 apart: done
    assert next_count([_device(300)(256)], limit=256) is None  # the limit held: nothing above to try


def test_verifying_answers_with_the_largest_count_that_held_within_a_tenth_of_the_device():
    for capacity, estimate in ((36, 50), (36, 20), (36, 36), (7, 40), (1, 8)):
        held, trials = verify_channels(_device(capacity), estimate, max_trials=4)
        assert len(trials) <= 4 and trials[0]["channels"] == estimate
        assert held == max(t["channels"] for t in trials if t["holds"])
        assert 0.9 * capacity <= held <= capacity, (capacity, estimate, trials)


def test_verifying_stops_at_the_budget_after_two_trials():
    held, trials = verify_channels(_device(36), 50, max_trials=4, budget_s=0)
    assert len(trials) == 2 and held == 36


def test_a_clip_the_planner_cannot_read_is_one_clear_error(tmp_path):
    bad = tmp_path / "camera.mp4"
    bad.write_bytes(b"not a video" * 10)
    with pytest.raises(InvalidInput, match="camera.mp4"):
        plan_capacity("unused.onnx", 4, clip=bad, measurements=M)


def test_the_plan_answers_with_what_held_in_the_trials_not_with_the_model(monkeypatch):
    from modelyard.edge.skills import planner

    runs = []

    class FakePipeline:  # a device that holds 9 channels whatever the model says
        def __init__(self, model, clip, sample_fps, **timing):
            runs.append({"clip": Path(clip), "fps": sample_fps, **timing})

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def trial(self, count):
            assert runs[-1]["clip"].is_file()  # the synthetic channel clip exists while the trials run
            return _device(9)(count)

    monkeypatch.setattr(planner, "PipelineTrials", FakePipeline)
    plan = plan_capacity("unused.onnx", 10, width=160, height=96, measurements=M)
    assert plan["model_channels"] == predict_channels(M, 25, 5) == 5  # the model says 5
    assert plan["verified"] and plan["predicted_channels"] == 9 and not plan["fits"]  # 9 held, 10 do not fit
    assert [t["channels"] for t in plan["trials"]] == [5, 10, 9]  # up, failed (9 got through), 9 held
    assert "holds 9" in plan["reason"] and "trial" in plan["reason"]
    quick = plan_capacity("unused.onnx", 5, width=160, height=96, measurements=M, quick=True)
    assert quick["fits"] and [t["channels"] for t in quick["trials"]] == [5, 10] and quick["predicted_channels"] == 5
    assert runs[-1]["window_s"] < runs[0]["window_s"]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    from modelyard.edge.skills.media import write_tiny_detector

    return write_tiny_detector(tmp_path_factory.mktemp("det") / "det.onnx", width=4)  # 320x320 input, little compute


@pytest.mark.slow
def test_a_trial_counts_what_the_real_pipeline_got_through_per_channel(detector, video):
    with PipelineTrials(detector, video, 5, warmup_s=0.2, window_s=1.0) as pipeline:
        easy = pipeline.trial(2)  # 2 channels of 160x96 at 5 fps: little work
        # a rate the source cannot give (the 10 fps clip sampled at 40 fps), on fresh channels of the same host
        pipeline.sample_fps = 40.0
        starved = pipeline.trial(1)
    # NOTE: not "easy holds": on a loaded CI box one late frame in a 1 s window is a fair failure; the rates are the
    # point: about 5 per channel, and about the clip's 10 where 40 were asked
    assert easy["channels"] == 2 and 3 <= easy["worst_fps"] <= 7 and 6 <= easy["frames_per_s"] <= 14, easy
    assert 1 <= easy["mean_batch"] <= 2
    assert not starved["holds"] and 5 <= starved["worst_fps"] <= 13, starved
