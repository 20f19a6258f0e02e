"""Layer-wise compare of a ResNet-50-sized model (torch:cpu reference vs onnxruntime:cpu target).

Reports the layer-wise comparison time as a multiple of two plain forward passes (reference + target) over the
same samples, and the peak resident memory added during the comparison, for 2 and for N samples (it must not grow
with samples). Goal: <= 10x.

    python benchmarks/layerwise_compare.py [--samples 8] [--size 224] [--data MODEL.yaml|MODEL.onnx]

``--data`` compares that ModelSpec (.yaml/.yml/.json) or ONNX file instead of the ResNet-50 (an ONNX file is its own
target; its torch reference runs the graph through onnx_torch, with no float64 floor). The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))


class PeakRss:
    """Samples this process's RSS every 10 ms; ``peak - start`` is what the measured block added."""

    def __init__(self):
        self.process = psutil.Process(os.getpid())
        self.start = self.peak = 0
        self._stop = threading.Event()

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def added_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--size", type=int, default=224, help="image height/width")
    parser.add_argument("--data", metavar="MODEL", help="ModelSpec YAML or ONNX file to use instead of ResNet-50")
    args = parser.parse_args()

    from modelyard.migrate.model.layerwise import compare_layers
    from modelyard.migrate.model.metrics import ThresholdSet
    from modelyard.migrate.model.passes import convert
    from modelyard.runtime.feeds import random_feeds
    from modelyard.runtime.registry import get_backend
    from modelyard.runtime.spec import parse_spec

    work = Path(tempfile.mkdtemp(prefix="modelyard-bench-"))
    from optimize_resnet18 import spec_from_data

    spec = spec_from_data(args.data) if args.data else parse_spec({
        "name": "resnet50",
        "entrypoint": "modelyard.runtime.zoo:resnet50",
        "inputs": [{"name": "pixel_values", "shape": ["batch", 3, args.size, args.size], "range": [-1, 1]}],
        "dims": {"batch": 1},
    })
    t0 = time.perf_counter()
    onnx_artifact = spec.source() if spec.source_format == "onnx" else \
        convert(spec, "onnx", out_dir=work, cache_dir=work / "cache").artifact
    export_s = time.perf_counter() - t0
    reference = get_backend("torch:cpu").load(spec.source())
    target = get_backend("onnxruntime:cpu").load(onnx_artifact)
    floor = get_backend("torch:cpu").load(spec.source(), dtype="float64") if spec.source_format == "torch" else None
    layers = target.layers()

    def feeds():
        return random_feeds(spec, args.samples, seed=0)

    warm = next(feeds())
    reference.infer(warm)
    target.infer(warm)  # first-run allocations out of the timing

    t0 = time.perf_counter()
    for f in feeds():
        reference.infer(f)
        target.infer(f)
    plain_s = time.perf_counter() - t0

    thresholds = ThresholdSet(preset="fp32").base()
    # warm-up: builds the target's probe session (all layer tensors as outputs) once, as a real run does
    compare_layers(reference, target, lambda: random_feeds(spec, 1, seed=0), thresholds)
    results = {}
    for samples in sorted({2, args.samples}, reverse=True):
        def some_feeds(n=samples):
            return random_feeds(spec, n, seed=0)

        with PeakRss() as memory:
            t0 = time.perf_counter()
            result = compare_layers(reference, target, some_feeds, thresholds, floor=floor, floor_samples=2,
                                    replay_samples=2)
            seconds = time.perf_counter() - t0
        results[samples] = (seconds, memory.added_mib, result)

    seconds, added, result = results[args.samples]
    plain_per_sample = plain_s / args.samples
    model = args.data or f"ResNet-50-sized transformers ResNet, {args.size}x{args.size}"
    print(f"model: {model}, {len(layers)} graph layers, "
          f"{result.summary['compared']} compared")
    print(f"export to ONNX (one-off): {export_s:.1f}s")
    print(f"two plain forward passes (torch:cpu + onnxruntime:cpu), {args.samples} samples: {plain_s:.2f}s")
    for n, (secs, mib, res) in sorted(results.items()):
        ratio = secs / (plain_per_sample * n)
        print(f"layer-wise compare, {n} samples: {secs:.2f}s = {ratio:.2f}x two forward passes; "
              f"peak RSS added {mib:.0f} MiB; divergent layers {res.summary.get('divergent', 0)}")
    ratio = seconds / plain_s
    print(f"RESULT layerwise/plain = {ratio:.2f}x (goal <= 10x); "
          f"peak memory {results[args.samples][1]:.0f} MiB at {args.samples} samples vs "
          f"{results[2][1]:.0f} MiB at 2 samples")
    print(json.dumps({"schema": "modelyard.bench-layerwise-compare/1", "model": model, "samples": args.samples,
                      "graph_layers": len(layers), "compared": result.summary["compared"],
                      "export_s": round(export_s, 2), "plain_s": round(plain_s, 3),
                      "by_samples": {str(n): {"seconds": round(secs, 3),
                                              "ratio_vs_two_passes": round(secs / (plain_per_sample * n), 3),
                                              "peak_rss_added_mib": round(mib, 1),
                                              "divergent": res.summary.get("divergent", 0)}
                                     for n, (secs, mib, res) in sorted(results.items())},
                      "layerwise_over_plain": round(ratio, 3)}))


if __name__ == "__main__":
    main()
