"""How much the durable job machinery costs on top of the process it must start anyway.

Runs N no-op jobs (``system.sleep`` with seconds=0) through a real ``modelyard worker`` on a fresh SQLite
workspace, and, in the same run, the anchor: N bare ``python -m modelyard.jobs.runner``-equivalent process starts
(the interpreter plus the imports a job process needs), at the same concurrency. Prints jobs/s for both and the
ratio, plus submit latency through the in-process SDK.

Usage: python benchmarks/job_throughput.py [--jobs 40] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

IMPORTS = ("import modelyard.jobs.runner, modelyard.core.plugins, modelyard.jobs.builtin, "
           "modelyard.store.workspace")


def bare_processes(count: int, concurrency: int) -> float:
    def one(_):
        subprocess.run([sys.executable, "-c", IMPORTS], check=True)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started


def through_worker(count: int, concurrency: int) -> tuple[float, list[float]]:
    from modelyard.client import Client

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with Client(home=home) as client:
            submit_ms = []
            ids = []
            for _ in range(count):
                t0 = time.perf_counter()
                ids.append(client.jobs.submit("system.sleep", {"seconds": 0})["id"])
                submit_ms.append((time.perf_counter() - t0) * 1000)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "modelyard.cli.main", "--home", str(home), "worker",
                            "--concurrency", str(concurrency), "--until-idle"], check=True,
                           stderr=subprocess.DEVNULL)
            elapsed = time.perf_counter() - started
            statuses = {client.jobs.get(i)["status"] for i in ids}
            assert statuses == {"succeeded"}, statuses
    return elapsed, submit_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    anchor = bare_processes(args.jobs, args.concurrency)
    ours, submit_ms = through_worker(args.jobs, args.concurrency)
    print(f"jobs={args.jobs} concurrency={args.concurrency}")
    print(f"bare process starts (anchor): {args.jobs / anchor:6.1f} /s  ({anchor:.2f}s)")
    print(f"durable jobs via worker:      {args.jobs / ours:6.1f} /s  ({ours:.2f}s, incl. worker start-up)")
    print(f"ratio (jobs/s ours / anchor): {anchor / ours:.2f}")
    print(f"submit latency in-process SDK: p50 {statistics.median(submit_ms):.1f} ms, "
          f"max {max(submit_ms):.1f} ms")


if __name__ == "__main__":
    main()
