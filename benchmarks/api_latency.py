"""API latency benchmark (issue 21, item 6): what one call through ``modelyard server`` costs.

Measures, against a real ``modelyard server`` process on 127.0.0.1 and a real service (a tiny linear ONNX model,
so the model costs nothing and what is left is the platform):

* SDK calls on one reused connection (``client.models.list()``, authenticated with a token): mean and p50;
* predict straight to the service's port vs through the API's proxy ``POST /api/v1/services/S/predict``, closed
  loop at concurrency 1 and 8, same token, same ``.npy`` body.

Goal: the proxied predict within 2 ms of the direct one at concurrency 1. On a busy machine wall-clock latency
mostly measures the scheduler (the proxied path has one more process to wake), so the script also reports the API
server's own CPU time per proxied call, which does not depend on the load.

Usage::

    python benchmarks/api_latency.py                   # 5 s per level
    python benchmarks/api_latency.py --duration 10 --sdk-calls 500 --json-out results.json
    python benchmarks/api_latency.py --data model.onnx  # serve this ONNX model instead of the tiny linear one

The last line printed is one JSON object with the figures.
"""

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def linear_onnx(path: Path) -> Path:
    """``y = x @ W + b`` on ``x [batch, 4] float32``: inference costs microseconds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(np.ones((4, 3), np.float32), "W"),
         numpy_helper.from_array(np.zeros(3, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def sample_input(path: Path) -> np.ndarray:
    """Ones shaped like the model's first input, named/unknown dims set to 1 (``[1, 4]`` for the linear model)."""
    import onnxruntime as ort

    first = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0]
    from modelyard.runtime.onnx_graph import onnx_dtype_name

    shape = [d if isinstance(d, int) and d > 0 else 1 for d in first.shape]
    return np.ones(shape, np.dtype(onnx_dtype_name(first.type).replace("bool", "bool_")))


def model_file(data: str | None, scratch: Path) -> Path:
    """``--data`` (an ONNX file) or the built-in tiny linear model."""
    if data is None:
        return linear_onnx(scratch / "linear.onnx")
    path = Path(data).expanduser().resolve()
    if not path.is_file() or path.suffix != ".onnx":
        sys.exit(f"--data must be an .onnx file: {data}")
    return path


# -- closed-loop load over raw keep-alive HTTP/1.1 (as light a client as it gets) ------------------------------------

async def _client(port: int, request: bytes, deadline: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
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
            (latencies if status == 200 else errors).append(time.perf_counter() - started if status == 200
                                                            else status)
    finally:
        writer.close()


def run_load(port: int, path: str, body: bytes, token: str, concurrency: int, seconds: float) -> dict:
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-npy\r\n"
               f"Accept: application/x-npy\r\nAuthorization: Bearer {token}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def main():
        latencies, errors = [], []
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, request, started + seconds, latencies, errors)
                               for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started

    latencies, errors, elapsed = asyncio.run(main())
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")

    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "throughput": len(latencies) / elapsed, "mean_ms": 1000 * statistics.fmean(latencies) if latencies
            else float("nan"), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


def sdk_latency(client, calls: int) -> dict:
    client.models.list()  # the connection is open from here on
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        client.models.list()
        times.append(time.perf_counter() - started)
    return {"calls": calls, "mean_ms": 1000 * statistics.fmean(times), "p50_ms": 1000 * statistics.median(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load level")
    parser.add_argument("--sdk-calls", type=int, default=200)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--data", metavar="MODEL", help="ONNX model file to serve instead of the tiny linear one")
    args = parser.parse_args()

    from modelyard.client import Client
    from modelyard.deploy import supervisor

    scratch = Path(tempfile.mkdtemp(prefix="modelyard-api-latency-"))
    home = scratch / "home"
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    cli = [sys.executable, "-m", "modelyard.cli.main", "--home", str(home)]
    token = json.loads(subprocess.run([*cli, "init", "--json"], check=True, capture_output=True, text=True,
                                      env=env).stdout)["token"]
    with Client(home=home) as local:
        model = model_file(args.data, scratch)
        local.models.register(model, "linear")
    server = subprocess.Popen([*cli, "server", "--port", "0", "--no-worker"], env=env, stdin=subprocess.DEVNULL)
    results: dict = {"schema": "modelyard.bench-api-latency/1", "model": args.data or "built-in linear"}
    try:
        info_path = home / "server.json"
        deadline = time.monotonic() + 60
        while not info_path.exists():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        url = json.loads(info_path.read_text())["url"]
        port = int(url.rsplit(":", 1)[1])
        client = Client(url=url, token=token)
        client.version()
        results["sdk"] = sdk_latency(client, args.sdk_calls)
        print(f"SDK call on a reused connection: mean {results['sdk']['mean_ms']:.2f} ms, "
              f"p50 {results['sdk']['p50_ms']:.2f} ms ({args.sdk_calls} calls)", flush=True)
        service = client.services.deploy("linear@1", "lin", timeout=120)
        buffer = io.BytesIO()
        np.save(buffer, sample_input(model))
        body = buffer.getvalue()
        service_port = int(service["url"].rsplit(":", 1)[1])
        import psutil

        api_process = psutil.Process(server.pid)
        for level in (1, 8):
            for name, target, path in (("direct", service_port, "/v1/predict"),
                                       ("proxied", port, "/api/v1/services/lin/predict")):
                cpu_before = sum(api_process.cpu_times()[:2])
                result = run_load(target, path, body, token, level, args.duration)
                if name == "proxied" and result["requests"]:
                    result["api_cpu_ms_per_call"] = 1000 * (sum(api_process.cpu_times()[:2]) - cpu_before) \
                        / (result["requests"] + result["errors"])
                    print(f"API server CPU per proxied call at c={level}: {result['api_cpu_ms_per_call']:.2f} ms",
                          flush=True)
                results[f"{name}_c{level}"] = result
                print(
                    f"predict {name:>7} c={level}: {result['throughput']:7.1f} req/s"
                    f"  mean {result['mean_ms']:6.2f} ms  p50 {result['p50_ms']:6.2f} ms"
                    f"  p99 {result['p99_ms']:6.2f} ms  errors {result['errors']}",
                    flush=True,
                )
        gap = results["proxied_c1"]["mean_ms"] - results["direct_c1"]["mean_ms"]
        results["proxy_overhead_c1_ms"] = gap
        print(f"proxy overhead at c=1: {gap:.2f} ms (goal: at most 2 ms)", flush=True)
        client.services.stop("lin")
        client.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        supervisor.stop(home)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
