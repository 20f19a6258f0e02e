"""Benchmark: N simulated edge devices speaking the agent protocol against one ``modelyard server`` on 127.0.0.1.

Each device (an asyncio task over one shared httpx.AsyncClient) polls its desired state and posts a report every
``--interval`` seconds (default 10, start times spread over the first interval), for ``--duration`` seconds.
Reports p50/p99 poll latency, report latency, errors, and the server process's CPU (share of one core, and CPU
milliseconds per request, which depends little on what else runs on the machine), against the
anchor goal of the issue measured in the same run: p99 poll latency <= 100 ms with 0 errors.

Also packages a small convolutional detector-style model (or ``--data MODEL.onnx``) into a bundle and prints its
figures: size and batch-1 latency before/after pruning and INT8, the accuracy drop each step cost, what was kept.

Run: ``.venv/bin/python benchmarks/edge_fleet.py [--devices 1000] [--duration 60] [--interval 10] [--data M.onnx]``
The last line printed is one JSON object with ``devices``, ``p99_ms`` and ``errors`` among the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_P99_MS = 100.0


def conv_model(path: Path) -> Path:
    """A small conv net on a 1x3x64x64 image: two 3x3 convs with ReLU, pooled into 8 scores (detector head-sized)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.2, (16, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.1, (32, 16, 3, 3)).astype(np.float32)
    w3 = rng.normal(0, 0.1, (32, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
         helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("MatMul", ["f", "w3"], ["scores"])],
        "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(w, n) for w, n in ((w1, "w1"), (w2, "w2"), (w3, "w3"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def image_folder(root: Path, per_class: int = 12) -> Path:
    """Smooth synthetic 64x64 images in two class folders: what INT8 is calibrated and the gate judges on."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("dark", "bright"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            base = rng.uniform(20, 110) + (110 if label == "bright" else 0)
            ramp = np.linspace(-30, 30, 64)[None, :, None] * rng.uniform(-1, 1)
            pixels = np.clip(base + ramp + rng.normal(0, 8, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.png")
    return root


def bundle_figures(model: Path, home: Path, calibration: Path | None) -> dict:
    from modelyard.client.client import Client

    with Client(home=home) as client:
        client.models.register(model, "bench-model")
        data = None
        if calibration is not None:
            data = client.data.import_path(calibration, "bench-images")["ref"]
        bundle = client.edge.package("bench-model@1", "cpu-x86", calibration=data)
    figures = bundle["figures"]
    return {"bundle_size_bytes": bundle["size"], "float": figures["float"], "final": figures["final"],
            "applied": figures["applied"], "samples_from": figures.get("samples_from"),
            "steps": [{k: s.get(k) for k in ("step", "accepted", "reason", "metric", "drop", "channels_removed")}
                      for s in figures["steps"]]}


def start_server(home: Path):
    import httpx

    subprocess.run([sys.executable, "-m", "modelyard.cli.main", "--home", str(home), "init", "--json"],
                   check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "modelyard.cli.main", "--home", str(home), "server", "--port",
                             "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = home / "server.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if info.exists():
            url = json.loads(info.read_text())["url"]
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    proc.kill()
    sys.exit("server did not come up")


def make_devices(home: Path, count: int) -> list[tuple[str, str]]:
    """Register and activate ``count`` devices. Setup, not measured: one transaction for all of them (the rows are
    what ``Devices.register`` + ``Devices.activate`` write, credential hash included)."""
    import hashlib
    import secrets

    from modelyard.core.ids import new_id, utcnow
    from modelyard.core.settings import Settings
    from modelyard.edge.devices import DEVICE_CREDENTIAL_PREFIX, Devices
    from modelyard.store.schema_edge import edge_devices
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(home))
    try:
        out, rows, now = [], [], utcnow()
        for index in range(count):
            credential = DEVICE_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)
            device_id = new_id("dev")
            rows.append({"id": device_id, "name": f"sim-{index:05d}", "labels": {"site": f"s{index % 10}"},
                         "status": "active", "activation_hash": None, "activation_expires_at": None,
                         "credential_hash": hashlib.sha256(credential.encode()).hexdigest(),
                         "desired": {"skills": [], "config": {}}, "desired_version": 0, "reported": {},
                         "actions": [], "created_by": "bench", "created_at": now, "last_seen_at": now})
            out.append((device_id, credential))
        with workspace.engine.begin() as conn:
            conn.execute(edge_devices.insert(), rows)
        first = Devices(workspace.engine).authenticate(out[0][1], out[0][0])
        assert first == out[0][0]
        return out
    finally:
        workspace.close()


def device_process(url: str, devices: list[tuple[str, str]], duration: float, interval: float, start_at: float,
                   out) -> None:
    """One load-generator process: an asyncio loop (uvloop when installed) with one aiohttp session whose devices
    each behave like ``modelyard-agent``: long-poll the desired state for the time left until the next report, then
    report; a poll answered with a new action reports it done. Measures with the monotonic clock (one clock for the
    whole machine, so the changer's timestamps in the parent process compare)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    out.send(asyncio.run(_devices_loop(url, devices, duration, interval, start_at)))
    out.close()


async def _devices_loop(url: str, devices: list[tuple[str, str]], duration: float, interval: float,
                        start_at: float) -> dict:
    import aiohttp

    result: dict = {"polls_at_once": [], "polls_expired": [], "reports": [], "seen": {}, "errors": {}}

    def error(kind: str) -> None:
        result["errors"][kind] = result["errors"].get(kind, 0) + 1

    async def device(session, device_id: str, credential: str) -> None:
        headers = {"Authorization": f"Bearer {credential}"}
        version, done = -1, []
        await asyncio.sleep(max(0.0, start_at - time.monotonic()) + random.uniform(0, interval))
        end = start_at + duration
        next_report = time.monotonic()
        # a device stops once its next report would fall after the end: clipping the last held polls to the end
        # made every device's poll expire in the same instant, a burst no fleet makes (it set the p99)
        while next_report < end:
            wait = round(max(0.0, next_report - time.monotonic()), 3)
            try:
                if wait > 0.05 or version == -1:  # as the agent, a first poll (answered at once) before reporting
                    started = time.monotonic()
                    async with session.get(f"{url}/edge/v1/devices/{device_id}/desired", headers=headers,
                                           params={"since": version, "wait": wait}) as response:
                        body = await response.json() if response.status == 200 else None
                    took = time.monotonic() - started
                    if body is None:
                        error(f"poll HTTP {response.status}")
                    elif body["version"] == version:
                        # held for the whole wait: what counts is how late past its deadline it came back
                        result["polls_expired"].append(max(0.0, took - wait) * 1000)
                    else:
                        if version == -1:
                            result["polls_at_once"].append(took * 1000)
                        version = body["version"]
                        for action in body["actions"]:
                            if action["id"] not in result["seen"]:
                                result["seen"][action["id"]] = time.monotonic()
                                done.append(action["id"])
                    if time.monotonic() < next_report - 0.05:
                        continue
                started = time.monotonic()
                async with session.post(f"{url}/edge/v1/devices/{device_id}/report", headers=headers, json={
                        "reported": {"agent_version": "sim", "skills": [], "desired_version": version,
                                     "deployment": {"id": None, "state": "active"}, "metrics": {"load_1m": 0.1}},
                        "logs": [], "alarms": [], "actions_done": done}) as response:
                    await response.read()
                result["reports"].append((time.monotonic() - started) * 1000)
                if response.status != 200:
                    error(f"report HTTP {response.status}")
                else:
                    done = []
                next_report = time.monotonic() + interval
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error(type(exc).__name__)
                await asyncio.sleep(1.0)

    # every device holds its own connection (a long-poll in flight), as real devices do
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0)
    timeout = aiohttp.ClientTimeout(total=interval + 30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(device(session, d, c) for d, c in devices))
    return result


def change_desired(home: Path, devices: list[tuple[str, str]], duration: float, per_second: float,
                   start_at: float, interval: float) -> dict[str, float]:
    """Queue a remote action on random devices (a desired-state change, written by another process the way a second
    server worker or a job would) and note when each committed; the devices' long-polls must pick it up."""
    from modelyard.core.settings import Settings
    from modelyard.edge.devices import Devices
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(home))
    changed: dict[str, float] = {}
    try:
        fleet = Devices(workspace.engine)
        rng = random.Random(7)
        time.sleep(max(0.0, start_at - time.monotonic()) + min(duration / 4, 10.0))  # devices have polled once
        end = start_at + duration - interval - 1  # every device still polls (its last report comes later)
        while time.monotonic() < end:
            action = fleet.request_action(rng.choice(devices)[0], "collect_logs")
            changed[action["id"]] = time.monotonic()
            time.sleep(1 / per_second)
    finally:
        workspace.close()
    return changed


def simulate(url: str, home: Path, devices: list[tuple[str, str]], duration: float, interval: float,
             processes: int, changes_per_s: float) -> dict:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    start_at = time.monotonic() + 3.0  # the processes start (spawn) before the clock runs
    workers = []
    for index in range(processes):
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(target=device_process, daemon=True,
                               args=(url, devices[index::processes], duration, interval, start_at, send))
        proc.start()
        workers.append((proc, receive))
    changed = change_desired(home, devices, duration, changes_per_s, start_at, interval) if changes_per_s > 0 else {}
    merged: dict = {"polls_at_once": [], "polls_expired": [], "reports": [], "seen": {}, "errors": {}}
    for proc, receive in workers:
        part = receive.recv()
        proc.join(timeout=30)
        for key in ("polls_at_once", "polls_expired", "reports"):
            merged[key] += part[key]
        merged["seen"].update(part["seen"])
        for kind, count in part["errors"].items():
            merged["errors"][kind] = merged["errors"].get(kind, 0) + count
    merged["changes"] = [max(0.0, merged["seen"][a] - t) * 1000 for a, t in changed.items() if a in merged["seen"]]
    merged["changes_lost"] = sum(1 for a in changed if a not in merged["seen"])
    return merged


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))], 2)


def main() -> None:
    import os

    import psutil

    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=10.0, help="Seconds between a device's reports.")
    parser.add_argument("--processes", type=int, default=2, help="Load-generator processes (asyncio + aiohttp).")
    parser.add_argument("--changes-per-s", type=float, default=2.0,
                        help="Desired-state changes per second (remote actions on random devices).")
    parser.add_argument("--no-bundle", action="store_true", help="Skip the bundle figures.")
    parser.add_argument("--data", type=Path, default=None, help="An ONNX model for the bundle figures.")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="A dataset (file or folder 'modelyard data import' reads) to calibrate INT8 on.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        root = Path(tmp)
        figures = None
        if not args.no_bundle:
            model = args.data or conv_model(root / "det.onnx")
            images = args.calibration or (None if args.data else image_folder(root / "images"))
            figures = bundle_figures(model, root / "package-home", images)
            print("bundle:", json.dumps(figures))
        home = root / "platform"
        devices_made = time.perf_counter()
        server, url = start_server(home)
        try:
            devices = make_devices(home, args.devices)
            print(f"{len(devices)} devices registered and activated in {time.perf_counter() - devices_made:.1f} s")
            process = psutil.Process(server.pid)
            cpu_before = sum(process.cpu_times()[:2])
            wall = time.perf_counter()
            result = simulate(url, home, devices, args.duration, args.interval, args.processes, args.changes_per_s)
            wall = time.perf_counter() - wall
            cpu_seconds = sum(process.cpu_times()[:2]) - cpu_before
            cpu = cpu_seconds / wall
            load = os.getloadavg()
        finally:
            server.terminate()
            server.wait(timeout=30)
    # the poll latency the goal is about: the server's answer time, i.e. a poll answered at once (the first one, or
    # one that finds a newer version) and how late a held poll came back past the wait it asked for
    polls = result["polls_at_once"] + result["polls_expired"]
    p99 = percentile(polls, 99)
    errors = sum(result["errors"].values())
    # what the server's CPU buys, nearly independent of the neighbours on a shared machine (unlike latency)
    requests = len(polls) + len(result["reports"]) + errors
    out = {
        "schema": "modelyard.bench-edge-fleet/3", "devices": args.devices, "duration_s": args.duration,
        "interval_s": args.interval, "load_processes": args.processes, "polls": len(polls),
        "p50_ms": percentile(polls, 50), "p99_ms": p99,
        "poll_at_once_p99_ms": percentile(result["polls_at_once"], 99),
        "poll_expired_late_p99_ms": percentile(result["polls_expired"], 99),
        "reports": len(result["reports"]), "report_p50_ms": percentile(result["reports"], 50),
        "report_p99_ms": percentile(result["reports"], 99),
        "changes": len(result["changes"]), "changes_lost": result["changes_lost"],
        "change_to_device_p50_ms": percentile(result["changes"], 50),
        "change_to_device_p99_ms": percentile(result["changes"], 99),
        "errors": errors + result["changes_lost"], "errors_by_kind": result["errors"],
        "server_cpu": round(cpu, 3), "requests": requests,
        "server_cpu_ms_per_request": round(cpu_seconds * 1000 / requests, 3) if requests else None,
        "load_avg_1m": round(load[0], 2), "goal_p99_ms": GOAL_P99_MS,
        "meets_goal": p99 is not None and p99 <= GOAL_P99_MS and not errors and not result["changes_lost"],
        "bundle": figures,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
