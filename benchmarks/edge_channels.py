"""Benchmark: how many 640x360 H.264 channels at 5 fps this device runs with a detector skill, measured, and the
capacity planner's prediction beside it (goal: within 20 %).

The clip (25 fps, generated with PyAV) loops on every channel in real time, as a camera would; the skill is the
built-in object-counting skill on an ONNX detector with the Modelyard detector contract (``--model``; default a
small untrained convolutional detector exported here, 320x320 input). A run with N channels "holds" when every
channel got at least 90 % of its 5 frames/s through the skill. The measured figure is the largest N that holds
(searched upward from 1, doubling, then bisected).

Run: ``.venv/bin/python benchmarks/edge_channels.py [--model DET.onnx] [--seconds 8] [--data CLIP.mp4]``

``--data`` uses your own clip instead of the generated one. The last line is one JSON object with
``channels_measured`` and ``channels_predicted``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def run_channels(clip: Path, model: Path, channels: int, seconds: float, fps: float) -> dict:
    from modelyard.edge.skills.builtin.registry import builtin_dir
    from modelyard.edge.skills.host import SkillHost

    entries = {f"cam{i}": {"source": str(clip), "fps": fps, "loop": True, "realtime": True, "config": {}}
               for i in range(channels)}
    host = SkillHost(builtin_dir("object-counting"), {"model": str(model)}, entries, lambda e: None, lambda a: None)
    with host:
        deadline = time.monotonic() + 120
        while host.status().get("batches", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the detector loaded and frames flow
        before = {cid: c.get("processed", 0) for cid, c in host.status()["channels"].items()}
        time.sleep(seconds)
        after = host.status()
    rates = {cid: (c.get("processed", 0) - before.get(cid, 0)) / seconds for cid, c in after["channels"].items()}
    worst = min(rates.values()) if rates else 0.0
    return {"channels": channels, "worst_fps": round(worst, 2), "holds": worst >= 0.9 * fps,
            "mean_batch": round(after["batched_frames"] / max(1, after["batches"]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="ONNX detector (default: a small one exported here)")
    parser.add_argument("--data", type=Path, help="an H.264 clip (default: 640x360 25 fps generated)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per trial")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--max-channels", type=int, default=64)
    args = parser.parse_args()

    from modelyard.edge.skills.media import write_tiny_detector, write_video
    from modelyard.edge.skills.planner import plan_capacity

    with tempfile.TemporaryDirectory() as scratch:
        clip = args.data or write_video(Path(scratch) / "clip.mp4", width=640, height=360, fps=25, seconds=4, gop=50)
        model = args.model or write_tiny_detector(Path(scratch) / "detector.onnx")
        plan = plan_capacity(model, 1, sample_fps=args.fps, source_fps=25.0)
        predicted = plan["predicted_channels"]
        print(f"planner: {predicted} channel(s); measurements {plan['measurements']}", flush=True)
        trials: dict[int, dict] = {}

        def holds(n: int) -> bool:
            if n not in trials:
                trials[n] = run_channels(clip, model, n, args.seconds, args.fps)
                print(f"{n} channel(s): worst channel {trials[n]['worst_fps']} fps, mean batch "
                      f"{trials[n]['mean_batch']} -> {'holds' if trials[n]['holds'] else 'falls behind'}", flush=True)
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
    error = abs(predicted - measured) / max(1, measured)
    print(json.dumps({"benchmark": "edge_channels", "resolution": "640x360", "fps": args.fps, "cpus": os.cpu_count(),
                      "model": str(args.model) if args.model else "tiny untrained detector 320x320",
                      "channels_measured": measured, "channels_predicted": predicted,
                      "prediction_error": round(error, 3), "within_20_percent": error <= 0.2,
                      "planner": plan["measurements"], "trials": [trials[k] for k in sorted(trials)]}))


if __name__ == "__main__":
    main()
