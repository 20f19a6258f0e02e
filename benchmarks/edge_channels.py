"""Benchmark: how many 640x360 H.264 channels at 5 fps this device runs with a detector skill, measured, and the
capacity planner's answer beside it (goal: within 20 %).

The clip (25 fps, generated with PyAV) loops on every channel in real time, as a camera would; the skill is the
built-in object-counting skill on an ONNX detector with the Modelyard detector contract (``--model``; default a
small untrained convolutional detector exported here, 320x320 input). A run with N channels "holds" when every
channel got at least 90 % of its 5 frames/s through the skill over the window (``--seconds``, after a 1 s warm-up;
the rate divides by the time between the skill process's own two status reports). The measured figure is the
largest N that holds: each trial a fresh ``SkillHost``, searched from the planner's answer upward doubling until one
fails, then bisected to one channel.

The planner (``plan_capacity``: its model's estimate, then its own short trials of the real pipeline) runs before
the measurement and again after it, in the same run on the same machine, so both see the same load; the figure
judged is the first (what a rollout would have been told); the second shows how far the answer moves as the load
does, and ``prediction_error_mean`` judges the mean of the two (they bracket the measurement in time).

Run: ``.venv/bin/python benchmarks/edge_channels.py [--model DET.onnx] [--seconds 8] [--data CLIP.mp4]``

``--data`` uses your own clip instead of the generated one, for the measurement and the planner alike (the planner
takes its resolution and fps). The last line is one JSON object with ``channels_measured`` and
``channels_predicted``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

HOLD_SHARE = 0.9  # every channel gets 90 % of its fps over the window: the benchmark's own rule, not the planner's code


def _wait(host, condition, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = host.status()
        if condition(status):
            return status
        if time.monotonic() > deadline or host.state in ("failed", "finished", "stopped"):
            channels = status.get("channels", {})
            raise SystemExit(f"edge_channels: {what} did not happen in {timeout:g} s: state {host.state}, "
                             f"{host.last_error}, processed {sum(c.get('processed', 0) for c in channels.values())}")
        time.sleep(0.1)


def run_channels(clip: Path, model: Path, channels: int, seconds: float, fps: float) -> dict:
    from modelyard.edge.skills.builtin.registry import builtin_dir
    from modelyard.edge.skills.host import SkillHost

    entries = {f"cam{i}": {"source": str(clip), "fps": fps, "loop": True, "realtime": True, "config": {}}
               for i in range(channels)}
    host = SkillHost(builtin_dir("object-counting"), {"model": str(model)}, entries, lambda e: None, lambda a: None)
    with host:
        _wait(host, lambda s: s.get("channels") and all(c.get("processed", 0) > 0 for c in s["channels"].values()),
              180, "every channel's first frame through the skill")
        time.sleep(1.0)  # warm-up: the readers and the batches settle
        mark = time.monotonic()
        before = _wait(host, lambda s: s.get("at_monotonic", 0) >= mark, 30, "a status report")
        time.sleep(seconds)
        after = _wait(host, lambda s: s.get("at_monotonic", 0) >= before["at_monotonic"] + seconds, 30,
                      "a status report")
    window = after["at_monotonic"] - before["at_monotonic"]
    rates = {cid: (c.get("processed", 0) - before["channels"][cid].get("processed", 0)) / window
             for cid, c in after["channels"].items()}
    worst = min(rates.values()) if rates else 0.0
    batches = after["batches"] - before["batches"]
    return {"channels": channels, "worst_fps": round(worst, 2), "holds": worst >= HOLD_SHARE * fps,
            "frames_per_s": round(sum(rates.values()), 1),
            "mean_batch": round((after["batched_frames"] - before["batched_frames"]) / max(1, batches), 2)}


def _plan(model: Path, fps: float, data: Path | None) -> dict:
    from modelyard.edge.skills.planner import plan_capacity

    plan = plan_capacity(model, 1, sample_fps=fps, source_fps=25.0, clip=data)
    print(f"planner: {plan['predicted_channels']} channel(s) in {plan['seconds']} s (model {plan['model_channels']};"
          f" trials {[(t['channels'], t['worst_fps'], t['holds']) for t in plan['trials']]})", flush=True)
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX detector (default: a small one exported here)")
    parser.add_argument("--data", type=Path, help="an H.264 clip (default: 640x360 25 fps generated)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per trial")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--max-channels", type=int, default=64)
    args = parser.parse_args()

    from modelyard.edge.skills.media import write_tiny_detector, write_video

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        clip = args.data or write_video(Path(scratch) / "clip.mp4", width=640, height=360, fps=25, seconds=4, gop=50)
        model = args.model or write_tiny_detector(Path(scratch) / "detector.onnx")
        plan = _plan(model, args.fps, args.data)
        predicted = plan["predicted_channels"]
        trials: dict[int, dict] = {}

        def holds(n: int) -> bool:
            if n not in trials:
                trials[n] = run_channels(clip, model, n, args.seconds, args.fps)
                print(f"{n} channel(s): worst channel {trials[n]['worst_fps']} fps, {trials[n]['frames_per_s']} "
                      f"frames/s, mean batch {trials[n]['mean_batch']} -> "
                      f"{'holds' if trials[n]['holds'] else 'falls behind'}", flush=True)
            return trials[n]["holds"]

        low, high = 0, max(1, predicted)  # low holds (0 trivially); find a high that does not
        while holds(high) and high < args.max_channels:
            low, high = high, min(args.max_channels, high * 2)
        if trials[high]["holds"]:
            low = high
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if holds(middle) else (low, middle)
        measured = low
        plan_after = _plan(model, args.fps, args.data)

    def error(figure: float) -> float:
        return round(abs(figure - measured) / max(1, measured), 3)

    size = plan["measurements"]
    print(json.dumps({"benchmark": "edge_channels", "resolution": f"{size['width']}x{size['height']}", "fps": args.fps,
                      "cpus": os.cpu_count(),
                      "load_average": [round(x, 2) for x in os.getloadavg()],
                      "model": str(args.model) if args.model else "tiny untrained detector 320x320",
                      "data": str(args.data) if args.data else "synthetic 640x360 25 fps",
                      "channels_measured": measured, "channels_predicted": predicted,
                      "prediction_error": error(predicted), "within_20_percent": error(predicted) <= 0.2,
                      "model_channels": plan["model_channels"], "model_error": error(plan["model_channels"]),
                      "planner_seconds": plan["seconds"],
                      "channels_predicted_after": plan_after["predicted_channels"],
                      "prediction_error_after": error(plan_after["predicted_channels"]),
                      # the two plans bracket the measurement in time: on a shared device whose load drifts over
                      # the minutes the measurement takes, their mean is the planner's answer at its midpoint
                      "prediction_error_mean": error((predicted + plan_after["predicted_channels"]) / 2),
                      "planner": {"measurements": plan["measurements"], "trials": plan["trials"]},
                      "planner_after": {"measurements": plan_after["measurements"], "trials": plan_after["trials"]},
                      "trials": [trials[k] for k in sorted(trials)],
                      "seconds": round(time.monotonic() - started, 1)}))


if __name__ == "__main__":
    main()
