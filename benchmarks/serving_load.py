"""Serving load benchmark (issue 6): a Modelyard service vs a minimal FastAPI + onnxruntime server written here,
same ResNet-18-sized ONNX image classifier, same machine, same run.

Closed loop: C clients each send a request, wait for the answer, send the next, for D seconds, at C = 1, 8, 32.
Both servers get the same binary body (a ``[1, 3, 224, 224]`` float32 ``.npy``) and answer ``.npy`` logits, so the
comparison is about serving, not JSON parsing. The load generator is a raw asyncio HTTP/1.1 client (keep-alive), as
light as it gets, so it steals as little CPU from the servers as possible.

Goals: Modelyard throughput >= 0.9x the minimal server at C=1 and >= 2x at C=32 (dynamic batching); p99 at C=1 at
most 2 ms above the minimal server's.

Usage::

    python benchmarks/serving_load.py                      # 20 s per level, C = 1, 8, 32
    python benchmarks/serving_load.py --duration 5 --json-out results.json
"""

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESNET18 = {"num_labels": 1000, "embedding_size": 64, "hidden_sizes": [64, 128, 256, 512], "depths": [2, 2, 2, 2],
            "layer_type": "basic"}


# -- the minimal baseline server -----------------------------------------------------------------------------------

def serve_minimal(model: str, port: int) -> None:
    """What a user writes in ten minutes: FastAPI, one ORT session, .npy in, .npy out."""
    import onnxruntime as ort
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        x = np.load(io.BytesIO(await request.body()), allow_pickle=False)
        y = await run_in_threadpool(session.run, None, {input_name: x})
        buffer = io.BytesIO()
        np.save(buffer, y[0])
        return Response(buffer.getvalue(), media_type="application/x-npy")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- load generator -------------------------------------------------------------------------------------------------

async def _client(host: str, port: int, request: bytes, deadline: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            if status != 200:
                errors.append(status)
            else:
                latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def _load(host: str, port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict:
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-npy\r\n"
               f"Accept: application/x-npy\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(host, port, request, started + seconds, latencies, errors)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "throughput": len(latencies) / elapsed, "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan")}


def run_load(port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict:
    return asyncio.run(_load("127.0.0.1", port, path, body, concurrency, seconds))


# -- orchestration --------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(port: int, path: str, body: bytes, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run_load(port, path, body, 1, 0.01)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


def build_model(home: Path, size: int):
    """Register a ResNet-18-sized image classifier (exported to ONNX by the registry) in a fresh workspace."""
    from modelyard.client import Client

    spec = home.parent / "resnet18.yaml"
    spec.write_text(json.dumps({"entrypoint": "modelyard.runtime.zoo:hf_resnet", "kwargs": RESNET18,
                                "inputs": [{"name": "pixel_values", "shape": ["batch", 3, size, size]}],
                                "outputs": ["logits"]}))
    client = Client(home=home)
    version = client.models.register(spec, "resnet18")
    from modelyard.registry.resolve import resolve

    return client, version, resolve(client._workspace, "resnet18@1").path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--serve-minimal", nargs=2, metavar=("MODEL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_minimal:
        serve_minimal(args.serve_minimal[0], int(args.serve_minimal[1]))
        return 0
    from modelyard.deploy import supervisor

    levels = [int(c) for c in args.concurrency.split(",")]
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(0).normal(size=(1, 3, args.image_size, args.image_size)).astype(np.float32))
    body = buffer.getvalue()
    with tempfile.TemporaryDirectory(prefix="modelyard-serving-bench-") as tmp:
        home = Path(tmp) / "home"
        print(f"building a ResNet-18-sized classifier ({args.image_size}x{args.image_size}) ...", flush=True)
        client, version, onnx_path = build_model(home, args.image_size)
        print(f"registered {version['ref']}: {version['size'] / 1e6:.1f} MB ONNX", flush=True)
        port = _free_port()
        minimal = subprocess.Popen([sys.executable, __file__, "--serve-minimal", str(onnx_path), str(port)],
                                   stdin=subprocess.DEVNULL)
        try:
            service = client.services.deploy("resnet18@1", "bench", public=True, max_batch=args.max_batch,
                                             max_wait_ms=args.max_wait_ms, timeout=300)
            _wait_http(port, "/predict", body)
            targets = {"minimal": (port, "/predict"), "modelyard": (service["port"], "/v1/predict")}
            for name, (p, path) in targets.items():  # warm up both (allocators, thread pools, batch shapes)
                run_load(p, path, body, 8, 3.0)
            results: dict[str, list[dict]] = {"minimal": [], "modelyard": []}
            for level in levels:
                for name, (p, path) in targets.items():  # alternate, so drift on a shared machine hits both
                    result = run_load(p, path, body, level, args.duration)
                    results[name].append(result)
                    print(f"{name:>9} c={level:<3} {result['throughput']:7.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
                          f"p95 {result['p95_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  errors {result['errors']}",
                          flush=True)
            metrics = client.services.metrics("bench")
        finally:
            minimal.send_signal(signal.SIGTERM)
            minimal.wait(timeout=30)
            client.services.stop("bench")
            supervisor.stop(home)
            client.close()
    from modelyard.cli.services import summarize_metrics

    batch_mean = summarize_metrics(metrics).get("resnet18@1", {}).get("batch_mean")
    summary = {"schema": "modelyard.bench-serving/1", "cpu_count": os.cpu_count(), "duration_s": args.duration,
               "model": "ResNet-18-sized (transformers ResNet, 11.7M params)", "image_size": args.image_size,
               "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "results": results,
               "modelyard_mean_batch": batch_mean, "ratios": {}}
    print("\nconcurrency  throughput ratio (modelyard / minimal)  p99 difference (ms)")
    for base, mine in zip(results["minimal"], results["modelyard"], strict=True):
        ratio = mine["throughput"] / base["throughput"]
        summary["ratios"][str(base["concurrency"])] = {"throughput": ratio, "p99_diff_ms": mine["p99_ms"] - base["p99_ms"]}
        print(f"{base['concurrency']:>11}  {ratio:38.2f}  {mine['p99_ms'] - base['p99_ms']:+19.1f}")
    print(f"mean rows per Modelyard inference over the run: {batch_mean:.2f}" if batch_mean else "")
    goals = {"c1_throughput_ge_0.9x": summary["ratios"].get("1", {}).get("throughput", 0) >= 0.9,
             "c32_throughput_ge_2x": summary["ratios"].get("32", {}).get("throughput", 0) >= 2.0,
             "c1_p99_within_2ms": summary["ratios"].get("1", {}).get("p99_diff_ms", 99) <= 2.0}
    summary["goals"] = goals
    print("goals: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in goals.items()))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
