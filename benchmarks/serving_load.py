"""Serving load benchmark (issues 6 and 20): a Modelyard service vs a minimal thread-pool FastAPI + onnxruntime
server written here and vs onnxruntime alone in this process, same ResNet-18-sized ONNX image classifier (3x64x64
input by default), same machine, same run.

Closed loop: C clients each send a request, wait for the answer, send the next, for D seconds, at C = 1, 8, 32.
Modelyard gets the same image as four bodies (``--bodies``): ``npy`` and ``json`` (``{"inputs": nested lists}``) on
``/v1/predict``, and the Open Inference Protocol's ``oip-binary`` (binary tensor data extension) and ``oip-json`` on
``/v2/models/bench/infer``; the minimal server gets ``npy`` and ``json`` (``json.loads`` + ``np.asarray``, what a user
writes in ten minutes). The load generator is a raw asyncio HTTP/1.1 client (keep-alive), as light as it gets, so
it steals as little CPU from the servers as possible.

The limit: onnxruntime alone, in this process, no HTTP, at the best of ``--limit-batches``; each load run is cut in
``--rounds`` slices with a slice of the limit before each and after the last, and compared with what the limit did
in between (on a shared machine the ceiling drifts with the neighbours' load).

Goals (issue 6, ``.npy``): Modelyard throughput >= 0.9x the minimal server at C=1 and >= 2x at C=32 (dynamic
batching); p99 at C=1 at most 2 ms above the minimal server's. Goals (issue 20, at the highest C): >= 40 % of the
limit with JSON bodies and >= 70 % with binary ones, p99 no worse than the minimal server's with the same kind of
body (``near_limit`` in the JSON line).

Baselines (``--baselines``): ``onnxruntime`` is the anchor, FastAPI + one ORT session on the best execution
provider the installed onnxruntime has (CUDA when it has it, else CPU); ``torch`` is FastAPI + the same network as a
PyTorch module (built from the same seeded config) on the GPU when there is one, a stricter baseline on a GPU
machine where onnxruntime has no CUDA provider. Modelyard is deployed with ``--backend auto`` unless told otherwise
(on such a machine that is ``torch:cuda``, the ONNX graph run by torch kernels).

Usage::

    python benchmarks/serving_load.py                      # 20 s per level, C = 1, 8, 32
    python benchmarks/serving_load.py --duration 10 --concurrency 32 --json-out results.json
    python benchmarks/serving_load.py --data model.onnx --bodies npy,oip-binary
    python benchmarks/serving_load.py --image-size 224 --baselines onnxruntime,torch --replicas 2   # a GPU machine
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

def _onnxruntime_predictor(model: str):
    """One ORT session on the best provider this onnxruntime build has."""
    import onnxruntime as ort

    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(model, providers=providers)
    input_name = session.get_inputs()[0].name
    print(f"minimal onnxruntime server on {session.get_providers()[0]}", flush=True)
    return lambda x: session.run(None, {input_name: x})[0]


def _torch_predictor(model: str):
    """The same network as a torch module, on the GPU when there is one."""
    import torch

    from modelyard.runtime.zoo import hf_resnet

    device = "cuda" if torch.cuda.is_available() else "cpu"
    network = hf_resnet(**RESNET18).eval().to(device)
    print(f"minimal torch server on {device}", flush=True)

    def predict(x):
        with torch.inference_mode():
            return network(pixel_values=torch.from_numpy(x).to(device)).logits.cpu().numpy()

    return predict


def serve_minimal(kind: str, model: str, port: int) -> None:
    """What a user writes in ten minutes: FastAPI, one model, .npy in, .npy out."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.concurrency import run_in_threadpool

    predict_fn = {"onnxruntime": _onnxruntime_predictor, "torch": _torch_predictor}[kind](model)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        body = await request.body()
        if request.headers.get("content-type") == "application/json":  # json.loads + np.asarray, the usual way
            x = np.asarray(json.loads(body)["inputs"], dtype=np.float32)
            y = await run_in_threadpool(predict_fn, x)
            return Response(json.dumps({"outputs": y.tolist()}), media_type="application/json")
        x = np.load(io.BytesIO(body), allow_pickle=False)
        y = await run_in_threadpool(predict_fn, x)
        buffer = io.BytesIO()
        np.save(buffer, y)
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


NPY_HEADERS = {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}


async def _load(host: str, port: int, path: str, body: bytes, concurrency: int, seconds: float,
                headers: dict | None = None) -> tuple[list, list, float]:
    lines = "".join(f"{k}: {v}\r\n" for k, v in (NPY_HEADERS if headers is None else headers).items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{lines}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(host, port, request, started + seconds, latencies, errors)
                           for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


def _summary(latencies: list[float], errors: list, elapsed: float, concurrency: int, seconds: float) -> dict:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "throughput": len(latencies) / elapsed, "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan")}


def run_load(port: int, path: str, body: bytes, concurrency: int, seconds: float, procs: int = 1,
             headers: dict | None = None, raw: bool = False):
    """Closed-loop load; with ``procs`` > 1 the clients are spread over that many processes (so one Python
    process's event loop is not what limits a fast server) and their latencies merged. ``raw``: the latencies,
    errors and elapsed seconds instead of their summary."""
    procs = max(1, min(procs, concurrency))
    if procs == 1:
        measured = asyncio.run(_load("127.0.0.1", port, path, body, concurrency, seconds, headers))
        return measured if raw else _summary(*measured, concurrency, seconds)
    import concurrent.futures
    import multiprocessing

    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    with concurrent.futures.ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_load_part, [(port, path, body, share, seconds, headers) for share in shares]))
    latencies = [x for part in parts for x in part[0]]
    errors = [x for part in parts for x in part[1]]
    measured = latencies, errors, max(part[2] for part in parts)
    return measured if raw else _summary(*measured, concurrency, seconds)


def _load_part(args) -> tuple[list, list, float]:
    port, path, body, concurrency, seconds, headers = args
    return asyncio.run(_load("127.0.0.1", port, path, body, concurrency, seconds, headers))


# -- orchestration --------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(port: int, path: str, body: bytes, headers: dict | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run_load(port, path, body, 1, 0.01, headers=headers)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


def build_model(home: Path, size: int, data: Path | None = None):
    """Register a ResNet-18-sized image classifier (exported to ONNX by the registry) in a fresh workspace, or the
    ONNX file ``data`` when given."""
    from modelyard.client import Client

    client = Client(home=home)
    if data is not None:
        version = client.models.register(data, "resnet18")
    else:
        spec = home.parent / "resnet18.yaml"
        spec.write_text(json.dumps({"entrypoint": "modelyard.runtime.zoo:hf_resnet", "kwargs": RESNET18,
                                    "inputs": [{"name": "pixel_values", "shape": ["batch", 3, size, size]}],
                                    "outputs": ["logits"]}))
        version = client.models.register(spec, "resnet18")
    from modelyard.registry.resolve import resolve

    return client, version, resolve(client._workspace, "resnet18@1").path


class InProcessLimit:
    """onnxruntime alone, in this process, no HTTP: images/s at a batch size, the ceiling a server can reach.

    Measured once per batch size at the start, then (at the best batch) in slices between the slices of each load
    run (:meth:`interleaved`), so each run is compared with the limit measured next to it: on a shared machine the
    ceiling drifts with the neighbours' load."""

    def __init__(self, model: str, shape: tuple[int, ...]):
        import onnxruntime as ort

        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(model, providers=providers)
        self.name = self.session.get_inputs()[0].name
        self.shape = shape
        self.samples: list[float] = []

    def rate(self, batch: int, seconds: float) -> float:
        x = np.random.default_rng(0).normal(size=(batch, *self.shape[1:])).astype(np.float32)
        self.session.run(None, {self.name: x})
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            self.session.run(None, {self.name: x})
            done += batch
        return done / (time.perf_counter() - started)

    def sample(self, batch: int, seconds: float) -> float:
        self.samples.append(self.rate(batch, seconds))
        return self.samples[-1]

    def interleaved(self, batch: int, rounds: int, port: int, path: str, body: bytes, concurrency: int,
                    seconds: float, procs: int, headers: dict) -> dict:
        """``seconds`` of load in ``rounds`` slices, each after a slice of the limit as long: the result's
        ``limit_img_s`` is what onnxruntime alone did in between, so drift on a shared machine hits both alike."""
        latencies, errors, elapsed, samples = [], [], 0.0, []
        for _ in range(rounds):
            samples.append(self.sample(batch, seconds / rounds))
            part = run_load(port, path, body, concurrency, seconds / rounds, procs, headers, raw=True)
            latencies += part[0]
            errors += part[1]
            elapsed += part[2]
        samples.append(self.sample(batch, seconds / rounds))
        result = _summary(latencies, errors, elapsed, concurrency, seconds)
        result["limit_img_s"] = statistics.fmean(samples)
        return result


def bodies(x: np.ndarray, input_name: str) -> dict[str, tuple[bytes, dict]]:
    """The same input as each protocol's body, with its headers: /v1 JSON and .npy, OIP JSON and binary."""
    buffer = io.BytesIO()
    np.save(buffer, x)
    oip_json = json.dumps({"inputs": [{"name": input_name, "datatype": "FP32", "shape": list(x.shape),
                                       "data": x.reshape(-1).tolist()}]}).encode()
    head = json.dumps({"inputs": [{"name": input_name, "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    json_headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return {
        "json": (json.dumps({"inputs": x.tolist()}).encode(), json_headers),
        "npy": (buffer.getvalue(), NPY_HEADERS),
        "oip-json": (oip_json, json_headers),
        "oip-binary": (head + x.tobytes(), {"Content-Type": "application/octet-stream",
                                            "Inference-Header-Content-Length": str(len(head))}),
    }


def _print_result(name: str, level: int, result: dict) -> None:
    print(f"{name:>26} c={level:<3} {result['throughput']:8.1f} req/s  p50 {result['p50_ms']:7.1f} ms  "
          f"p95 {result['p95_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  errors {result['errors']}  "
          f"(limit {result.get('limit_img_s', float('nan')):.1f} img/s)", flush=True)


def _ratios(results: dict[str, list[dict]], baseline: str, mine: str = "modelyard") -> dict[str, dict]:
    return {str(base["concurrency"]): {"throughput": ours["throughput"] / base["throughput"],
                                       "p99_diff_ms": ours["p99_ms"] - base["p99_ms"]}
            for base, ours in zip(results[baseline], results[mine], strict=True)}


def _goals(ratios: dict[str, dict]) -> dict[str, bool]:
    """Issue 6's goals, for the concurrency levels that were measured."""
    goals = {}
    if "1" in ratios:
        goals["c1_throughput_ge_0.9x"] = ratios["1"]["throughput"] >= 0.9
        goals["c1_p99_within_2ms"] = ratios["1"]["p99_diff_ms"] <= 2.0
    if "32" in ratios:
        goals["c32_throughput_ge_2x"] = ratios["32"]["throughput"] >= 2.0
    return goals


def near_limit(results: dict[str, list[dict]], limit: float, level: int = 32) -> dict:
    """Issue 20's goals at concurrency ``level``: Modelyard's req/s (one image each) as a share of the in-process
    limit measured around that run (``limit`` when a run has none), >= 40 % with JSON bodies and >= 70 % with
    binary ones, p99 no worse than the thread-pool server's with the same kind of body."""
    def at(name: str) -> dict | None:
        return next((r for r in results.get(name, []) if r["concurrency"] == level), None)

    shares, p99 = {}, {}
    for name in results:
        result = at(name)
        if result is not None:
            shares[name] = result["throughput"] / result.get("limit_img_s", limit)
            p99[name] = result["p99_ms"]
    goals = {}
    for body, floor, baseline in (("json", 0.4, "minimal-onnxruntime-json"), ("oip-json", 0.4,
                                                                               "minimal-onnxruntime-json"),
                                  ("npy", 0.7, "minimal-onnxruntime"), ("oip-binary", 0.7, "minimal-onnxruntime")):
        mine = "modelyard" if body == "npy" else f"modelyard-{body}"
        if mine in shares:
            goals[f"{body}_ge_{int(floor * 100)}pct_of_limit"] = shares[mine] >= floor
            if baseline in p99:
                goals[f"{body}_p99_le_thread_pool"] = p99[mine] <= p99[baseline]
    return {"concurrency": level, "share_of_limit": shares, "p99_ms": p99, "goals": goals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--image-size", type=int, default=64, help="square input side (default 64: 3x64x64)")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--backend", default="auto", help="Modelyard's --backend (default auto)")
    parser.add_argument("--replicas", type=int, default=1, help="Modelyard replicas (default 1)")
    parser.add_argument("--baselines", default="onnxruntime",
                        help="comma-separated minimal servers: onnxruntime (the anchor), torch")
    parser.add_argument("--bodies", default="npy,json,oip-binary,oip-json",
                        help="request bodies sent to Modelyard: npy and json on /v1/predict, oip-binary and "
                             "oip-json on /v2/models/NAME/infer (the minimal onnxruntime server gets npy and json)")
    parser.add_argument("--limit-batches", default="8,32",
                        help="batch sizes of the in-process onnxruntime limit (the best one is the limit)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="slices of each load run, each after an in-process limit slice as long (default 5)")
    parser.add_argument("--instances", type=int, default=2, help="Modelyard's inferences in flight (default 2)")
    parser.add_argument("--client-procs", type=int, default=max(1, min(4, (os.cpu_count() or 1) // 4)),
                        help="load-generator processes at concurrency >= 8 (default: a quarter of the cores, <= 4)")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--data", type=Path,
                        help="an ONNX model to serve instead of the built-in ResNet-18-sized one (its first input "
                             "is fed random float32 data; named or unknown dimensions are 1; torch baseline off)")
    parser.add_argument("--serve-minimal", nargs=3, metavar=("KIND", "MODEL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_minimal:
        serve_minimal(args.serve_minimal[0], args.serve_minimal[1], int(args.serve_minimal[2]))
        return 0
    from modelyard.deploy import supervisor

    levels = [int(c) for c in args.concurrency.split(",")]
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    unknown = set(baselines) - {"onnxruntime", "torch"}
    if unknown or not baselines:
        parser.error(f"--baselines: unknown {sorted(unknown)}; choose from onnxruntime, torch")
    kinds = [b.strip() for b in args.bodies.split(",") if b.strip()]
    if set(kinds) - {"npy", "json", "oip-binary", "oip-json"} or not kinds:
        parser.error("--bodies: choose from npy, json, oip-binary, oip-json")
    shape: tuple[int, ...] = (1, 3, args.image_size, args.image_size)
    input_name = "pixel_values"
    if args.data is not None:
        if not args.data.is_file() or args.data.suffix != ".onnx":
            parser.error(f"--data: {args.data} is not an .onnx file")
        if "torch" in baselines:
            parser.error("--data: the torch baseline needs the built-in network; use --baselines onnxruntime")
        import onnx

        first = onnx.load(str(args.data), load_external_data=False).graph.input[0]
        shape = tuple(d.dim_value if d.dim_value > 0 else 1 for d in first.type.tensor_type.shape.dim)
        input_name = first.name
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    payloads = bodies(x, input_name)
    with tempfile.TemporaryDirectory(prefix="modelyard-serving-bench-") as tmp:
        home = Path(tmp) / "home"
        if args.data is None:
            print(f"building a ResNet-18-sized classifier ({args.image_size}x{args.image_size}) ...", flush=True)
        client, version, onnx_path = build_model(home, args.image_size, args.data)
        print(f"registered {version['ref']}: {version['size'] / 1e6:.1f} MB ONNX", flush=True)
        batches = [int(b) for b in args.limit_batches.split(",")] if shape[0] == 1 else [shape[0]]
        ceiling = InProcessLimit(str(onnx_path), shape)
        limits = {str(b): ceiling.rate(b, min(args.duration, 10.0)) for b in batches}
        best_batch = int(max(limits, key=limits.get))
        print("onnxruntime in-process: " + ", ".join(f"batch {b} {r:.1f} img/s" for b, r in limits.items()),
              flush=True)
        minimal: dict[str, tuple[subprocess.Popen, int]] = {}
        try:
            for kind in baselines:
                port = _free_port()
                minimal[kind] = (subprocess.Popen([sys.executable, __file__, "--serve-minimal", kind, str(onnx_path),
                                                   str(port)], stdin=subprocess.DEVNULL), port)
            service = client.services.deploy("resnet18@1", "bench", public=True, max_batch=args.max_batch,
                                             max_wait_ms=args.max_wait_ms, backend=args.backend,
                                             replicas=args.replicas, instances=args.instances, timeout=300)
            # name -> (port, path, body, headers)
            targets: dict[str, tuple[int, str, bytes, dict]] = {}
            for kind, (_, port) in minimal.items():
                targets[f"minimal-{kind}"] = (port, "/predict", *payloads["npy"])
                if kind == "onnxruntime" and "json" in kinds:
                    targets["minimal-onnxruntime-json"] = (port, "/predict", *payloads["json"])
            for kind in kinds:
                name = "modelyard" if kind == "npy" else f"modelyard-{kind}"
                path = "/v2/models/bench/infer" if kind.startswith("oip") else "/v1/predict"
                targets[name] = (service["port"], path, *payloads[kind])
            for _name, (p, path, body, headers) in targets.items():  # warm up (allocators, pools, batch shapes)
                _wait_http(p, path, body, headers)
                run_load(p, path, body, 8, 2.0, headers=headers)
                run_load(p, path, body, 32, 2.0, args.client_procs, headers=headers)
            import httpx

            described = httpx.get(f"http://127.0.0.1:{service['port']}/v1/models", timeout=10).json()
            backends = sorted({v["backend"] for v in described["versions"]})
            results: dict[str, list[dict]] = {name: [] for name in targets}
            for level in levels:
                for name, (p, path, body, headers) in targets.items():  # alternate: drift on a busy machine hits all
                    result = ceiling.interleaved(best_batch, args.rounds, p, path, body, level, args.duration,
                                                 args.client_procs if level >= 8 else 1, headers)
                    results[name].append(result)
                    _print_result(name, level, result)
            metrics = client.services.metrics("bench")
        finally:
            for process, _ in minimal.values():
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
            client.services.stop("bench")
            supervisor.stop(home)
            client.close()
    from modelyard.cli.services import summarize_metrics

    limit = max(limits.values())
    batch_mean = summarize_metrics(metrics).get("resnet18@1", {}).get("batch_mean")
    summary = {"schema": "modelyard.bench-serving/3", "cpu_count": os.cpu_count(), "duration_s": args.duration,
               "model": str(args.data) if args.data else "ResNet-18-sized (transformers ResNet, 11.7M params)",
               "image_size": args.image_size, "input_shape": list(shape),
               "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms, "replicas": args.replicas,
               "modelyard_backend": backends or args.backend, "client_procs": args.client_procs,
               "body_bytes": {kind: len(payloads[kind][0]) for kind in kinds},
               "in_process_img_s": limits, "limit_img_s": limit, "limit_samples_img_s": ceiling.samples,
               "instances": args.instances, "results": results,
               "modelyard_mean_batch": batch_mean, "ratios": {}, "goals": {}}
    print(f"\nModelyard on {', '.join(backends) or args.backend}, {args.replicas} replica(s); "
          f"mean rows per inference {batch_mean:.2f}" if batch_mean else "")
    if "npy" in kinds:
        for kind in baselines:
            ratios = _ratios(results, f"minimal-{kind}")
            summary["ratios"][kind] = ratios
            summary["goals"][kind] = goals = _goals(ratios)
            print(f"vs minimal {kind}:  " + "  ".join(
                f"c={c} {r['throughput']:.2f}x (p99 {r['p99_diff_ms']:+.1f} ms)" for c, r in ratios.items()))
            print("  goals: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in goals.items()))
    level = max(levels)
    summary["near_limit"] = near = near_limit(results, limit, level)
    print(f"share of the in-process limit (sliced between each run; {limit:.1f} img/s at the start) at c={level}: "
          + "  ".join(
        f"{name} {share:.0%} (p99 {near['p99_ms'][name]:.1f} ms)" for name, share in near["share_of_limit"].items()))
    print("  goals: " + ", ".join(f"{k}={'met' if v else 'NOT met'}" for k, v in near["goals"].items()))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
