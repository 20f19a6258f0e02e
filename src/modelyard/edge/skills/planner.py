"""Capacity planner: how many channels at which fps this device holds with a given detector, measured here.

Two measurements on the device, then arithmetic:

- decode: frames/s that PyAV decodes at a resolution (one H.264 stream, FFmpeg's threads on all cores; every
  frame of a channel's source is decoded whatever the sampling fps, as H.264 needs its reference frames);
- conversion: seconds to turn one decoded frame into the RGB array the skill gets -- paid only for the sampled
  frames (``sources.iter_source`` converts a frame once it falls on the channel's fps grid). On simple scenes the
  conversion costs several times the decode, so charging it to every decoded frame (as the first planner did, by
  converting inside the decode measurement) made the plan ~1/3 short of what the device measurably held;
- inference: seconds per batch for batch sizes 1, 2, 4, 8, 16, the median of a few runs (the skill runs at the
  device's typical speed, not its best: on a shared device the fastest run is the moment the neighbours paused,
  and one lucky run at one size bent the old piecewise curve enough to double the plan), fitted with
  ``t_batch(b) = per_batch + per_frame * b`` (least squares, both >= 0).

Batches: the channels' frames do not arrive together, and the muxer waits only ``batch_wait_s`` (10 ms) after the
first one, so a batch holds the frames that arrived while the previous one ran: ``b = N * F * (t_batch(b) + wait)``
(at most N). Partial batches pay ``per_batch`` more often than one batch of N per tick would (the first planner
assumed that, amortising the per-batch cost over all channels).

For N channels with source rate ``S`` and sampling rate ``F``, one second of video costs
``N * S / decode_fps + N * F * t_convert + (N * F / b) * t_batch(b)`` seconds of the device. The device holds N
channels while that stays under ``headroom`` (0.85: the skill logic, the muxer and the OS need the rest).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEADROOM = 0.85
BATCH_SIZES = (1, 2, 4, 8, 16)
BATCH_WAIT_S = 0.01  # the muxer's wait for the other channels (worker.SkillRuntime's batch_wait_s default)


@dataclass(frozen=True)
class Measurements:
    decode_fps: float  # frames/s decoded at the planned resolution (decode only)
    batch_seconds: dict[int, float]  # batch size -> seconds per inference
    width: int
    height: int
    convert_seconds: float = 0.0  # one decoded frame -> the RGB array (sampled frames only)

    def to_dict(self) -> dict:
        return {"decode_fps": round(self.decode_fps, 1), "convert_ms": round(self.convert_seconds * 1000, 3),
                "width": self.width, "height": self.height,
                "batch_ms": {str(k): round(v * 1000, 2) for k, v in sorted(self.batch_seconds.items())}}


def batch_fit(batch_seconds: dict[int, float]) -> tuple[float, float]:
    """``(per_batch, per_frame)`` seconds: the least-squares line through the measured batch times, both >= 0."""
    sizes = np.array(sorted(batch_seconds), dtype=float)
    times = np.array([batch_seconds[int(s)] for s in sizes])
    if len(sizes) == 1:
        return 0.0, float(times[0] / sizes[0])
    per_frame, per_batch = np.polyfit(sizes, times, 1)
    if per_batch < 0:  # the line through the origin instead
        return 0.0, float((sizes @ times) / (sizes @ sizes))
    if per_frame < 0:
        return float(times.mean()), 0.0
    return float(per_batch), float(per_frame)


def batch_time(batch_seconds: dict[int, float], size: float) -> float:
    """Seconds for one inference of ``size`` frames (:func:`batch_fit`)."""
    per_batch, per_frame = batch_fit(batch_seconds)
    return per_batch + per_frame * size


def mean_batch(m: Measurements, channels: int, sample_fps: float, wait_s: float = BATCH_WAIT_S) -> float:
    """The frames a batch holds in steady state: those that arrive while one batch runs plus the muxer's wait
    (``b = N * F * (per_batch + per_frame * b + wait)``), between 1 and ``channels``."""
    per_batch, per_frame = batch_fit(m.batch_seconds)
    rate = channels * sample_fps
    if rate * per_frame >= 1:
        return float(channels)  # the device cannot keep up: every batch is full
    return float(min(channels, max(1.0, rate * (per_batch + wait_s) / (1 - rate * per_frame))))


def load_per_second(m: Measurements, channels: int, source_fps: float, sample_fps: float) -> float:
    """Device-seconds spent per second of video for ``channels`` channels (1.0 = the device is full)."""
    if channels <= 0:
        return 0.0
    size = mean_batch(m, channels, sample_fps)
    return (channels * source_fps / m.decode_fps + channels * sample_fps * m.convert_seconds
            + channels * sample_fps / size * batch_time(m.batch_seconds, size))


def predict_channels(m: Measurements, source_fps: float, sample_fps: float, headroom: float = HEADROOM,
                     limit: int = 256) -> int:
    """The most channels whose load stays under ``headroom``."""
    channels = 0
    while channels < limit and load_per_second(m, channels + 1, source_fps, sample_fps) <= headroom:
        channels += 1
    return channels


def measure_decode(width: int, height: int, *, fps: int = 25, seconds: float = 4.0,
                   repeats: int = 2) -> tuple[float, float]:
    """(decoded frames/s, seconds to convert one frame to RGB), each the best of ``repeats`` passes."""
    import av

    from modelyard.edge.skills.media import write_video

    with tempfile.TemporaryDirectory() as folder:
        clip = write_video(Path(folder) / "probe.mp4", width=width, height=height, fps=fps, seconds=seconds,
                           gop=fps * 2)
        decode_fps, convert_s = 0.0, float("inf")
        for _ in range(repeats):
            frames, kept = 0, []
            started = time.perf_counter()
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    frames += 1
                    if len(kept) < 25:
                        kept.append(frame)
            decode_fps = max(decode_fps, frames / (time.perf_counter() - started))
            started = time.perf_counter()
            for frame in kept:
                frame.to_ndarray(format="rgb24")
            convert_s = min(convert_s, (time.perf_counter() - started) / len(kept))
        return decode_fps, convert_s



def measure_batches(infer_batch: Callable[[list], list], width: int, height: int, *, repeats: int = 5,
                    sizes: tuple[int, ...] = BATCH_SIZES) -> dict[int, float]:
    from modelyard.edge.skills.media import synthetic_frame

    frame = synthetic_frame(5, width, height)
    infer_batch([frame])  # warm-up
    result = {}
    for size in sizes:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            infer_batch([frame] * size)
            times.append(time.perf_counter() - started)
        result[size] = float(np.median(times))
    return result


def measure(infer_batch: Callable[[list], list], width: int = 640, height: int = 360) -> Measurements:
    decode_fps, convert_s = measure_decode(width, height)
    return Measurements(decode_fps, measure_batches(infer_batch, width, height), width, height, convert_s)


def plan_capacity(model: str | Path, channels: int | list[dict], *, width: int = 640, height: int = 360,
                  source_fps: float = 25.0, sample_fps: float = 5.0, measurements: Measurements | None = None,
                  headroom: float = HEADROOM) -> dict:
    """Does a deployment of ``channels`` channels of a detector fit this device? (the rollout's check)

    Args:
        model: an ONNX detector with the Modelyard detector contract (input ``images``; boxes, scores, classes).
        channels: a number of channels, or the channel entries (each may set ``fps`` and ``source_fps``).
        width, height: the channels' resolution (default 640x360).
        source_fps: frames/s of each source (default 25); sample_fps: the skill's fps per channel (default 5).
        measurements: reuse earlier measurements (default: measure now, a few seconds).
        headroom: the share of the device the plan may fill (default 0.85).

    Returns:
        ``{"fits", "predicted_channels", "requested_channels", "load", "reason", "measurements"}``.
    """
    if isinstance(channels, list):
        requested = len(channels)
        sample_fps = max([float(c.get("fps", sample_fps)) for c in channels] or [sample_fps])
        source_fps = max([float(c.get("source_fps", source_fps)) for c in channels] or [source_fps])
    else:
        requested = int(channels)
    if measurements is None:
        from modelyard.edge.skills.builtin.registry import builtin_dir
        from modelyard.edge.skills.manifest import load_logic, load_manifest

        folder = builtin_dir("object-counting")
        logic = load_logic(folder, load_manifest(folder))
        logic.setup({"model": str(model)})
        measurements = measure(logic.infer_batch, width, height)
    predicted = predict_channels(measurements, source_fps, sample_fps, headroom)
    load = load_per_second(measurements, requested, source_fps, sample_fps)
    fits = requested <= predicted
    reason = (f"{requested} channel(s) of {width}x{height} at {source_fps:g} fps decoded, {sample_fps:g} fps "
              f"inferred use {load:.0%} of this device; it holds {predicted} (headroom {headroom:.0%})")
    return {"fits": fits, "predicted_channels": predicted, "requested_channels": requested, "load": round(load, 3),
            "reason": reason, "measurements": measurements.to_dict()}
