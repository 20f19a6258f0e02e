"""The built-in ``inference`` skill: load a bundle's model with the runtime backends and run it over the bundle's
sample inputs at a configured rate, writing its counters (processed, errors, median latency) to a stats file the
agent reads for health gates. Runs as its own process (``python -m modelyard.edge.agent.skill_process``) so a crash
takes down only the skill.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import deque
from pathlib import Path


def write_stats(path: Path, stats: dict) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(stats))
    os.replace(scratch, path)


def run(slot: Path, stats_path: Path, config: dict) -> int:
    import numpy as np

    from modelyard.runtime.registry import get_backend
    from modelyard.runtime.spec import Artifact, parse_spec

    manifest = json.loads((slot / "manifest.json").read_text())
    spec = parse_spec(manifest["spec"], base_dir=slot)
    backend = config.get("backend") or manifest.get("runtime") or "onnxruntime:cpu"
    rate_hz = float(config.get("rate_hz", 10))
    with np.load(slot / manifest["samples"]) as archive:
        arrays = {name: archive[name] for name in archive.files}
    count = len(next(iter(arrays.values())))
    feeds = [{name: array[i] for name, array in arrays.items()} for i in range(count)]
    latencies: deque[float] = deque(maxlen=200)
    stats = {"pid": os.getpid(), "bundle": manifest["bundle"], "processed": 0, "errors": 0, "latency_ms_p50": None,
             "last_error": None, "started_at": time.time()}
    runner = get_backend(backend).load(Artifact("onnx", slot / manifest["spec"]["onnx"], spec))
    written = 0.0
    index = 0
    period = 1.0 / rate_hz if rate_hz > 0 else 0.0
    while True:
        started = time.perf_counter()
        try:
            runner.infer(feeds[index % count])
            latencies.append((time.perf_counter() - started) * 1000)
        except Exception as exc:  # noqa: BLE001 - a failed inference is counted, not fatal
            stats["errors"] += 1
            stats["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
        stats["processed"] += 1
        index += 1
        now = time.monotonic()
        if now - written >= 0.25:
            stats["latency_ms_p50"] = round(statistics.median(latencies), 4) if latencies else None
            write_stats(stats_path, stats)
            written = now
        rest = period - (time.perf_counter() - started)
        if rest > 0:
            time.sleep(rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard-agent-skill")
    parser.add_argument("--slot", required=True, type=Path)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--config", default="{}")
    args = parser.parse_args(argv)
    try:
        return run(args.slot, args.stats, json.loads(args.config))
    except Exception as exc:  # noqa: BLE001 - the agent reads the reason from stderr / the stats file
        print(f"skill failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
