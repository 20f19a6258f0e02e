"""Accuracy-gated optimisation of a ResNet-18-sized ``transformers`` image classifier (random weights from a config
with a fixed seed), batch 1, on this machine.

Goal (issue 5): the optimiser's best candidate is >= 4x faster than torch eager fp32 with top-1 agreement >= 99 % on
256 inputs, and within 10 % of the fastest accepted candidate an exhaustive run over the same space finds.

1. ``optimize(strategy="search")`` with a budget; 2. ``optimize(strategy="exhaustive")`` over the same space (no
budget); 3. the search's best, the exhaustive best and torch eager are re-measured *interleaved* (round-robin
rounds), so machine load hits all three alike; the figures printed are those medians.

    python benchmarks/optimize_resnet18.py [--samples 256] [--budget-s 600] [--size 224] [--skip-exhaustive]
                                          [--data MODEL.yaml|MODEL.onnx]

``--data`` optimises that ModelSpec (.yaml/.yml/.json) or ONNX file instead of the ResNet-18. The last line printed is
one JSON object with the figures and the verdict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def spec_file(folder: Path, size: int) -> Path:
    import yaml

    path = folder / "resnet18.yaml"
    path.write_text(yaml.safe_dump({
        "name": "resnet18",
        "entrypoint": "modelyard.runtime.zoo:hf_resnet",
        "kwargs": {"num_labels": 1000, "embedding_size": 64, "hidden_sizes": [64, 128, 256, 512],
                   "depths": [2, 2, 2, 2], "layer_type": "basic", "seed": 0},
        "inputs": [{"name": "pixel_values", "shape": ["batch", 3, size, size], "range": [-2.0, 2.0]}],
        "outputs": ["logits"],
        "dims": {"batch": 1},
        "task": {"type": "classification"},
    }))
    return path


def spec_from_data(data: str):
    """A ModelSpec from ``--data``: a ModelSpec file as it is, or an ONNX file with inputs read from its signature."""
    import re

    from modelyard.runtime.spec import InputSpec, load_spec, parse_spec

    path = Path(data).expanduser().resolve()
    if not path.is_file():
        sys.exit(f"--data: no such file {data}")
    if path.suffix in (".yaml", ".yml", ".json"):
        return load_spec(path)
    if path.suffix != ".onnx":
        sys.exit(f"--data must be a ModelSpec (.yaml/.yml/.json) or an .onnx file: {data}")
    import onnxruntime as ort

    from modelyard.runtime.onnx_graph import onnx_dtype_name

    dtypes = InputSpec.model_fields["dtype"].annotation.__args__
    inputs = []
    for index, info in enumerate(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()):
        shape = []
        for axis, dim in enumerate(info.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            else:  # named or unknown dims become identifiers (1 when the spec's dims leave them unset)
                name = re.sub(r"\W", "_", dim) if isinstance(dim, str) and dim else f"dim{index}_{axis}"
                shape.append(name if re.match(r"[A-Za-z_]", name) else f"d_{name}")
        dtype = onnx_dtype_name(info.type)
        inputs.append({"name": info.name, "shape": shape, "dtype": dtype if dtype in dtypes else "float32"})
    return parse_spec({"name": path.stem, "onnx": str(path), "inputs": inputs}, base_dir=path.parent)


def interleaved(runners: dict, feeds: dict, rounds: int = 15, per_round: int = 10) -> dict[str, float]:
    """Median latency (ms) of each runner, measured in alternating rounds."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for runner in runners.values():
        for _ in range(5):
            runner.infer(feeds)
    for _ in range(rounds):
        for name, runner in runners.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                runner.infer(feeds)
                times[name].append((time.perf_counter() - t0) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--budget-s", type=float, default=600)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--skip-exhaustive", action="store_true")
    parser.add_argument("--data", metavar="MODEL", help="ModelSpec YAML or ONNX file to optimise instead of ResNet-18")
    args = parser.parse_args()

    from modelyard.migrate.model.bench import batched_feeds
    from modelyard.runtime.registry import get_backend

    def load_runner(backend: str, artifact, options: dict | None = None):  # the backend applies its own options
        return get_backend(backend).load(artifact, options or {})
    from modelyard.migrate.optimize.search import optimize
    from modelyard.runtime.spec import load_spec

    work = Path(tempfile.mkdtemp(prefix="modelyard-opt-bench-"))
    spec = spec_from_data(args.data) if args.data else load_spec(spec_file(work, args.size))
    cache = work / "cache"

    def progress(fraction: float, message: str) -> None:
        print(f"  {fraction:4.0%} {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    search = optimize(spec, "cpu", samples=args.samples, budget_s=args.budget_s, out_dir=work / "search",
                      cache_dir=cache, use_cache=False, progress=progress)
    search_s = time.perf_counter() - started
    print(search)
    if search.best is None:
        print("FAIL: the search accepted no candidate")
        print(json.dumps({"model": args.data or "resnet18", "search_candidates": len(search.candidates),
                          "search_seconds": round(search_s, 1), "best": None, "ok": False}))
        return 1
    exhaustive = None
    if not args.skip_exhaustive:
        started = time.perf_counter()
        exhaustive = optimize(spec, "cpu", samples=args.samples, budget_s=None, out_dir=work / "exhaustive",
                              strategy="exhaustive", cache_dir=cache, use_cache=False, progress=progress)
        exhaustive_s = time.perf_counter() - started
        print(exhaustive)

    source = spec.source()
    runners = {"torch eager fp32": load_runner("torch:cpu", source)}  # an ONNX --data runs in torch via onnx_torch
    from modelyard.runtime.spec import Artifact

    def artifact_of(best):
        path = Path(best.artifact)
        return Artifact("openvino" if path.suffix == ".xml" else "onnx", path, spec)

    runners["search best"] = load_runner(search.best.backend, artifact_of(search.best), search.best.options)
    if exhaustive is not None and exhaustive.best is not None:
        runners["exhaustive best"] = load_runner(exhaustive.best.backend, artifact_of(exhaustive.best),
                                                 exhaustive.best.options)
    feeds = batched_feeds(spec, 1)
    medians = interleaved(runners, feeds)
    torch_ms = medians["torch eager fp32"]
    best_ms = medians["search best"]
    speedup = torch_ms / best_ms
    top1 = search.best.accuracy.get("value")
    figures = {
        "model": args.data or f"transformers ResNet-18 ({args.size}x{args.size}, 1000 classes, seed 0), batch 1",
        "torch_eager_fp32_ms": round(torch_ms, 3),
        "search_best": f"{search.best.label} {search.best.options}",
        "search_best_ms": round(best_ms, 3),
        "speedup_vs_torch": round(speedup, 2),
        "top1_agreement": top1,
        "gate_samples": search.best.accuracy.get("samples"),
        "search_candidates": len(search.candidates),
        "search_seconds": round(search_s, 1),
    }
    ok = speedup >= 4.0 and top1 is not None and top1 >= 0.99
    if exhaustive is not None and exhaustive.best is not None:
        ex_ms = medians["exhaustive best"]
        figures.update({
            "exhaustive_best": f"{exhaustive.best.label} {exhaustive.best.options}",
            "exhaustive_best_ms": round(ex_ms, 3),
            "search_over_exhaustive": round(best_ms / ex_ms, 3),
            "exhaustive_candidates": len(exhaustive.candidates),
            "exhaustive_seconds": round(exhaustive_s, 1),
        })
        ok = ok and best_ms <= 1.10 * ex_ms
    print(("PASS" if ok else "MISS") + ": goal >= 4x vs torch eager, top-1 >= 99 %, within 10 % of exhaustive")
    figures["ok"] = ok
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
