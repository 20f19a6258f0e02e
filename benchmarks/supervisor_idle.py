"""Idle supervisor benchmark (issue 21, item 14): what the service supervisor costs while nothing happens.

Deploys N services of a tiny linear ONNX model (one replica each) in a fresh workspace, waits until all are ready,
then reads the supervisor's CPU time (user + system, psutil) over a fixed interval with no traffic and reports it
as a percentage of one core, with the replicas' for comparison.

Usage::

    python benchmarks/supervisor_idle.py                      # 4 services, 30 s
    python benchmarks/supervisor_idle.py --services 8 --interval 60 --json-out idle.json
    python benchmarks/supervisor_idle.py --data model.onnx    # this ONNX model instead of the tiny linear one

The last line printed is one JSON object with the figures.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_latency import model_file  # noqa: E402 - the same tiny model, or --data


def cpu_seconds(process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=4)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds of idle measurement")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after all are ready")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--data", metavar="MODEL", help="ONNX model file to deploy instead of the tiny linear one")
    args = parser.parse_args()

    import psutil

    from modelyard.client import Client
    from modelyard.deploy import supervisor
    from modelyard.deploy.state import read_json, services_root

    scratch = Path(tempfile.mkdtemp(prefix="modelyard-idle-"))
    home = scratch / "home"
    client = Client(home=home)
    try:
        client.models.register(model_file(args.data, scratch), "linear")
        for index in range(args.services):
            client.services.deploy("linear@1", f"idle{index}", timeout=120)
        time.sleep(args.settle)
        pid = read_json(services_root(home) / "supervisor.json")["pid"]
        process = psutil.Process(pid)
        replicas = [child for child in process.children(recursive=True)]
        before = cpu_seconds(process), [cpu_seconds(r) for r in replicas]
        started = time.monotonic()
        time.sleep(args.interval)
        elapsed = time.monotonic() - started
        after = cpu_seconds(process), [cpu_seconds(r) for r in replicas]
        supervisor_pct = 100 * (after[0] - before[0]) / elapsed
        replica_pcts = [100 * (a - b) / elapsed for a, b in zip(after[1], before[1], strict=True)]
        result = {"schema": "modelyard.bench-supervisor-idle/1", "services": args.services,
                  "interval_s": round(elapsed, 2), "supervisor_cpu_pct": round(supervisor_pct, 2),
                  "replica_cpu_pct_mean": round(sum(replica_pcts) / max(1, len(replica_pcts)), 2),
                  "replicas": len(replicas), "model": args.data or "built-in linear"}
        print(f"idle supervisor with {args.services} services: {supervisor_pct:.2f} % of one core over "
              f"{elapsed:.0f} s (replicas: {result['replica_cpu_pct_mean']:.2f} % each, {len(replicas)} of them)",
              flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(result, indent=2))
        for index in range(args.services):
            client.services.stop(f"idle{index}")
    finally:
        supervisor.stop(home)
        client.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
