"""Capacity planner: how many channels at which fps this device holds with a given detector, measured here.

Model, then verify. The model (below) times the pipeline's parts in-process and gives a first estimate; it cannot see
what only the real pipeline pays per frame (frames crossing threads and the muxer's Python, the skill's logic per
channel, the runtime's threads competing with the decoders, the neighbours' load on a shared device), and on a quiet
2-core machine it said 50 where 36 held. So the planner then runs the real pipeline -- one ``SkillHost`` with the
object-counting skill on a synthetic clip at the planned resolution, the channels looping in real time -- for short
trials (:func:`verify_channels`), starting at the estimate and bracketing, then bisecting, to the largest count that
held real time (:func:`holds_real_time`: ``HOLD_SHARE`` of the frames through the skill). The plan's answer is what
held; the model's figures stay in the plan to explain it. Run time: the model's measurements (~1-2 s), the host's
start (~2-3 s: a spawned process loads the detector) and at most ``max_trials`` (4) trials of ``warmup_s + window_s``
(~2.5 s each), ~12-15 s in all on a quiet 2-core device; ``quick=True`` (tests) ~5 s; no trial but the second starts
``budget_s`` (10 s) after the first ended.

The model's measurements, then arithmetic:

- decode: frames/s that PyAV decodes at a resolution (one H.264 stream, FFmpeg's threads on all cores; every
  frame of a channel's source is decoded whatever the sampling fps, as H.264 needs its reference frames);
- conversion: seconds to turn one decoded frame into the RGB array the skill gets -- paid only for the sampled
  frames (``sources.iter_source`` converts a frame once it falls on the channel's fps grid). On simple scenes the
  conversion costs several times the decode, so charging it to every decoded frame (as the first planner did, by
  converting inside the decode measurement) made the plan ~1/3 short of what the device measurably held;
- inference: seconds per batch for batch sizes 1, 4, 16, the median of a few runs (the skill runs at the
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

import math
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


def measure_decode(width: int, height: int, *, fps: int = 25, seconds: float = 4.0, repeats: int = 2,
                   clip: str | Path | None = None) -> tuple[float, float]:
    """(decoded frames/s, seconds to convert one frame to RGB), each the best of ``repeats`` passes over ``clip``
    (default: a synthetic H.264 clip of ``seconds`` at ``width`` x ``height``, ``fps``, made here)."""
    import av

    from modelyard.edge.skills.media import write_video

    with tempfile.TemporaryDirectory() as folder:
        if clip is None:
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


def measure(infer_batch: Callable[[list], list], width: int = 640, height: int = 360, *,
            clip: str | Path | None = None, quick: bool = False) -> Measurements:
    decode_fps, convert_s = measure_decode(width, height, clip=clip, repeats=1 if quick else 2)
    # the model only starts the trials: three sizes pin its line (five cost ~2 s more on a 2-core device)
    batches = measure_batches(infer_batch, width, height, repeats=2 if quick else 3,
                              sizes=(1, 4) if quick else (1, 4, 16))
    return Measurements(decode_fps, batches, width, height, convert_s)


# -- verify: the real pipeline ----------------------------------------------------------------------------------------

HOLD_SHARE = 0.9  # channels keep real time when the skill handles at least this share of their frames
STEP_UP = 2.0  # the next count after one that held, until one fails (a model 10x short still gets there in 4)
MIN_STEP_DOWN = 0.8  # the next count after one that failed is at most this share of it


def holds_real_time(counts: dict[str, int], window_s: float, sample_fps: float) -> bool:
    """The channels kept real time over a window: together they got at least ``HOLD_SHARE`` of their frames through
    the skill, and none fell more than one frame below ``HOLD_SHARE`` of its own (and there is a channel).

    The one frame of slack is the window's quantisation: a window of W seconds holds ``fps * W`` frame slots rounded
    either way, and in a 1.5 s trial one frame is 13 % of a channel's; without it, short trials failed counts that a
    benchmark's 5 s windows (where one frame is 4 %) held."""
    if not counts:
        return False
    due = sample_fps * window_s
    return sum(counts.values()) >= HOLD_SHARE * due * len(counts) and min(counts.values()) >= HOLD_SHARE * due - 1


def next_count(trials: list[dict], limit: int) -> int | None:
    """The channel count to try after ``trials`` (each ``{"channels", "fps", "holds", "frames_per_s"}``), or None
    when the bracket is closed: the largest count that held and the smallest above it that failed are 1 apart (or
    within 5 %).

    Up by ``STEP_UP`` from the largest count that held until one fails. A count that failed still says what the
    device got through (``frames_per_s / fps`` channels' worth, a little under what it holds: fewer channels also
    decode less), so the next try is that figure when it lies inside the bracket (from no count that held: at most
    ``MIN_STEP_DOWN`` of the failed count); otherwise the bracket is bisected."""
    held = [t["channels"] for t in trials if t["holds"]]
    low = max(held, default=0)
    failed = [t for t in trials if not t["holds"] and t["channels"] > low]
    if not failed:
        return None if low >= limit else min(limit, max(low + 1, math.ceil(low * STEP_UP)))
    failing = min(failed, key=lambda t: t["channels"])
    high = failing["channels"]
    if high - low <= max(1, math.floor(0.05 * low)):
        return None
    through = math.floor(failing["frames_per_s"] / failing["fps"]) if failing["fps"] else 0
    if low == 0:
        return max(1, min(through, math.floor(high * MIN_STEP_DOWN), high - 1))
    return through if low < through < high else (low + high) // 2


class PipelineTrials:
    """One ``SkillHost`` running the object-counting skill on ``clip`` (looping, in real time) whose channel set
    changes per trial without a restart; ``trial(n)`` says whether ``n`` channels held real time.

    Each trial gets fresh channels (new ids: readers that fell behind in a failed trial would otherwise race to
    catch up), waits until every channel's first frame went through the skill plus ``warmup_s``, then counts the
    frames each channel got through over ``window_s`` (between two of the skill process's own status reports)."""

    def __init__(self, model: str | Path, clip: str | Path, sample_fps: float, *, warmup_s: float = 0.5,
                 window_s: float = 1.5, start_timeout_s: float = 120.0):
        self.model, self.clip, self.sample_fps = str(model), str(clip), float(sample_fps)
        self.warmup_s, self.window_s, self.start_timeout_s = warmup_s, window_s, start_timeout_s
        self.host = None
        self._trials = 0

    def _channels(self, count: int) -> dict:
        self._trials += 1
        return {f"t{self._trials}-cam{i}": {"source": self.clip, "fps": self.sample_fps, "loop": True,
                                            "realtime": True, "config": {}} for i in range(count)}

    def __enter__(self) -> PipelineTrials:
        return self

    def __exit__(self, *exc) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None

    def _wait(self, condition: Callable[[dict], bool], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.host.status()
            if condition(status):
                return status
            if self.host.state in ("failed", "finished", "stopped"):
                raise RuntimeError(f"the skill process for the capacity trial ended ({self.host.state}): "
                                   f"{self.host.last_error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"capacity trial: the skill did not get there in {timeout:g} s "
                                   f"(state {self.host.state}, last status {_brief(status)})")
            time.sleep(0.05)

    def trial(self, count: int) -> dict:
        """Run ``count`` channels; ``{"channels", "fps", "holds", "worst_fps", "frames_per_s", "mean_batch",
        "seconds"}``."""
        from modelyard.edge.skills.builtin.registry import builtin_dir
        from modelyard.edge.skills.host import SkillHost

        started = time.monotonic()
        channels = self._channels(count)
        if self.host is None:
            # a status every 0.1 s (default 0.5 s) so the windows start and end close to when asked
            self.host = SkillHost(builtin_dir("object-counting"), {"model": self.model}, channels, _ignore,
                                  _ignore, options={"status_every_s": 0.1}).start()
            timeout = self.start_timeout_s
        else:
            self.host.update_config(channels=channels)
            timeout = 30.0 + count * 0.5

        def all_flowing(status: dict) -> bool:
            seen = status.get("channels", {})
            return set(seen) == set(channels) and all(c.get("processed", 0) > 0 for c in seen.values())

        self._wait(all_flowing, timeout)
        time.sleep(self.warmup_s)
        mark = time.monotonic()
        first = self._wait(lambda s: s.get("at_monotonic", 0) >= mark, 30.0)
        time.sleep(self.window_s)
        last = self._wait(lambda s: s.get("at_monotonic", 0) >= first["at_monotonic"] + self.window_s, 30.0)
        window = last["at_monotonic"] - first["at_monotonic"]
        counts = {cid: c.get("processed", 0) - first["channels"][cid].get("processed", 0)
                  for cid, c in last["channels"].items()}
        rates = {cid: got / window for cid, got in counts.items()}
        batches = last.get("batches", 0) - first.get("batches", 0)
        frames = last.get("batched_frames", 0) - first.get("batched_frames", 0)
        return {"channels": count, "fps": self.sample_fps, "holds": holds_real_time(counts, window, self.sample_fps),
                "worst_fps": round(min(rates.values()), 2), "frames_per_s": round(sum(rates.values()), 1),
                "mean_batch": round(frames / max(1, batches), 2), "seconds": round(time.monotonic() - started, 2)}


def _ignore(_message) -> None:
    return None


def _brief(status: dict) -> dict:
    channels = status.get("channels", {})
    return {"channels": len(channels), "processed": sum(c.get("processed", 0) for c in channels.values()),
            "batches": status.get("batches"), "states": sorted({c.get("state") for c in channels.values()} - {None})}


def verify_channels(run_trial: Callable[[int], dict], estimate: int, *, max_trials: int = 4, limit: int = 256,
                    budget_s: float | None = None) -> tuple[int, list[dict]]:
    """The largest channel count that held real time in up to ``max_trials`` trials of ``run_trial``, starting at
    ``estimate`` (:func:`next_count` picks the rest); ``(held, trials)``. 0 when no trial held. No trial starts
    once ``budget_s`` seconds have passed since the first ended (the first also waits for the skill process to
    start, which a loaded device stretches to several times a trial), except the second: one trial alone brackets
    nothing."""
    trials: list[dict] = []
    count: int | None = max(1, min(limit, int(estimate)))
    started = None
    while count is not None and len(trials) < max_trials:
        if budget_s is not None and len(trials) >= 2 and time.monotonic() - started > budget_s:
            break
        trials.append(run_trial(count))
        started = started or time.monotonic()
        count = next_count(trials, limit)
    return max([t["channels"] for t in trials if t["holds"]], default=0), trials


def clip_format(clip: str | Path) -> tuple[int, int, float]:
    """``(width, height, fps)`` of a video file's first video stream (a clear error when it has none)."""
    import av

    from modelyard.core.errors import InvalidInput

    try:
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            return stream.width, stream.height, float(stream.average_rate or stream.guessed_rate or 25)
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise InvalidInput(f"{clip}: not a video the planner can read ({exc or 'no video stream'})") from None


def plan_capacity(model: str | Path, channels: int | list[dict], *, width: int = 640, height: int = 360,
                  source_fps: float = 25.0, sample_fps: float = 5.0, measurements: Measurements | None = None,
                  headroom: float = HEADROOM, verify: bool = True, quick: bool = False,
                  budget_s: float = 10.0, clip: str | Path | None = None) -> dict:
    """Does a deployment of ``channels`` channels of a detector fit this device?

    The model's estimate from the measurements, then (``verify``) short trials of the real pipeline from there: the
    answer is the largest count that held (see the module's docstring). Run time ~12-15 s on a 2-core device
    (``quick``: ~5 s, shorter trials, for tests); ``verify=False`` answers with the model alone, at once when
    ``measurements`` are given.

    Args:
        model: an ONNX detector with the Modelyard detector contract (input ``images``; boxes, scores, classes).
        channels: a number of channels, or the channel entries (each may set ``fps`` and ``source_fps``).
        width, height: the channels' resolution (default 640x360).
        source_fps: frames/s of each source (default 25); sample_fps: the skill's fps per channel (default 5).
        measurements: reuse earlier measurements for the model (default: measure now, a few seconds).
        headroom: the share of the device the model may fill (default 0.85).
        verify: run the real pipeline to check the estimate (default True).
        quick: fewer, shorter measurements and trials (default False).
        budget_s: no verifying trial but the second starts this many seconds after the first ended (default 10).
        clip: a video like the channels' (a sample from a camera) to measure and verify on; its resolution and fps
            replace ``width``, ``height`` and ``source_fps`` (default: a synthetic H.264 clip made here).

    Returns:
        ``{"fits", "predicted_channels", "requested_channels", "load", "reason", "model_channels", "verified",
        "trials", "seconds", "measurements"}``: ``predicted_channels`` is what held (the model's estimate when not
        verified); ``load`` is the model's share of the device for the requested channels.
    """
    began = time.monotonic()
    if isinstance(channels, list):
        requested = len(channels)
        sample_fps = max([float(c.get("fps", sample_fps)) for c in channels] or [sample_fps])
        source_fps = max([float(c.get("source_fps", source_fps)) for c in channels] or [source_fps])
    else:
        requested = int(channels)
    if clip is not None:
        width, height, source_fps = clip_format(clip)
    with tempfile.TemporaryDirectory() as scratch:
        if clip is None and (verify or measurements is None):
            from modelyard.edge.skills.media import write_video

            fps = max(1, round(source_fps))
            clip = write_video(Path(scratch) / "channel.mp4", width=width, height=height, fps=fps, seconds=4,
                               gop=2 * fps)
        if measurements is None:
            from modelyard.edge.skills.builtin.registry import builtin_dir
            from modelyard.edge.skills.manifest import load_logic, load_manifest

            folder = builtin_dir("object-counting")
            logic = load_logic(folder, load_manifest(folder))
            logic.setup({"model": str(model)})
            measurements = measure(logic.infer_batch, width, height, clip=clip, quick=quick)
        estimate = predict_channels(measurements, source_fps, sample_fps, headroom)
        predicted, trials = estimate, []
        if verify:
            window_s, warmup_s = (0.8, 0.3) if quick else (1.5, 0.5)
            with PipelineTrials(model, clip, sample_fps, warmup_s=warmup_s, window_s=window_s) as pipeline:
                predicted, trials = verify_channels(pipeline.trial, estimate, max_trials=2 if quick else 4,
                                                    budget_s=budget_s)
    load = load_per_second(measurements, requested, source_fps, sample_fps)
    fits = requested <= predicted
    how = (f"held real time in a trial of the real pipeline ({len(trials)} trial(s); the model estimated "
           f"{estimate})" if verify else f"by the model (headroom {headroom:.0%})")
    reason = (f"{requested} channel(s) of {width}x{height} at {source_fps:g} fps decoded, {sample_fps:g} fps "
              f"inferred use {load:.0%} of this device by the model; it holds {predicted}, {how}")
    return {"fits": fits, "predicted_channels": predicted, "requested_channels": requested, "load": round(load, 3),
            "reason": reason, "model_channels": estimate, "verified": verify, "trials": trials,
            "seconds": round(time.monotonic() - began, 1), "measurements": measurements.to_dict()}
