"""Benchmark engine: latency percentiles, throughput, peak memory and an optional per-operator profile.

For each batch size: warm up, then time ``Runner.infer`` in rounds until the median is stable (two rounds in a
row move it by less than ``tolerance``) or the time cap is reached. Reported: p50/p90/p99/mean latency,
throughput (``batch x 1000 / mean ms``), the coefficient of variation (std / mean, with a warning when the machine
is too noisy to trust small differences) and the peak resident memory of the run.

Feeds are the compare engine's (``modelyard.runtime.feeds``: seeded random within the spec's ranges, or real data),
with the spec's batch dimension set to each batch size.

Runtime options (``RUNTIME_OPTIONS``) go beyond what the runtime backends expose on ``load``: ONNX Runtime's graph
optimisation level and execution mode, OpenVINO's threads, performance hint and streams. ``load_runner`` loads
through the backend registry and then rebuilds the session / recompiles the model with them.

Example::

    result = benchmark(load_spec("m.yaml"), "openvino:cpu", batch_sizes=[1, 8], profile=True)
    print(result)          # one line per batch size, then the hot spots
    result.to_dict()       # the "modelyard.benchmark/1" JSON
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.runtime.spec import Artifact, ModelSpec

SCHEMA = "modelyard.benchmark/1"
NOISY_CV = 0.10
RUNTIME_OPTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("threads",),
    "onnxruntime": ("threads", "inter_op_threads", "graph_optimization", "execution_mode"),
    "openvino": ("precision", "threads", "performance_hint", "streams"),
}
_ORT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}
_ORT_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}
_OV_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


@dataclass(frozen=True)
class BenchSettings:
    """How long and how hard to measure.

    Args:
        warmup_s: minimum warm-up time; at least 3 warm-up runs. Default 0.3.
        min_iterations: timed runs before the median may be called stable. Default 20.
        max_iterations: hard cap on timed runs. Default 2000.
        max_seconds: time cap of the timed phase per batch size. Default 3.
        tolerance: the median is stable once two rounds in a row move it by less than this. Default 0.01.
    """

    warmup_s: float = 0.3
    min_iterations: int = 20
    max_iterations: int = 2000
    max_seconds: float = 3.0
    tolerance: float = 0.01


@dataclass(frozen=True)
class LatencyStats:
    """Timings of one batch size. ``to_dict()`` is a ``runs[]`` entry of ``modelyard.benchmark/1``."""

    batch_size: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    iterations: int
    warmup: int
    stable: bool
    peak_rss_mb: float | None

    @property
    def cv(self) -> float:
        return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0

    @property
    def throughput(self) -> float:
        """Samples per second: ``batch x 1000 / mean latency``."""
        return self.batch_size * 1000.0 / self.mean_ms if self.mean_ms > 0 else 0.0

    @property
    def noisy(self) -> bool:
        return self.cv > NOISY_CV

    def to_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "latency_ms": {k: round(v, 4) for k, v in (
                ("p50", self.p50_ms), ("p90", self.p90_ms), ("p99", self.p99_ms), ("mean", self.mean_ms),
                ("min", self.min_ms), ("max", self.max_ms), ("std", self.std_ms))},
            "throughput": round(self.throughput, 2),
            "cv": round(self.cv, 4),
            "noisy": self.noisy,
            "iterations": self.iterations,
            "warmup": self.warmup,
            "stable": self.stable,
            "peak_rss_mb": None if self.peak_rss_mb is None else round(self.peak_rss_mb, 1),
        }

    def __str__(self) -> str:
        flag = " [noisy]" if self.noisy else ""
        return (f"batch {self.batch_size}: p50 {self.p50_ms:.3f} ms, p90 {self.p90_ms:.3f}, p99 {self.p99_ms:.3f}, "
                f"{self.throughput:.1f}/s, cv {self.cv:.1%}, {self.iterations} runs{flag}")


@dataclass(frozen=True)
class BenchResult:
    """A benchmark of one model on one backend over several batch sizes; ``bool()`` is "no noise warning"."""

    backend: str
    model: str
    options: dict
    runs: tuple[LatencyStats, ...]
    warnings: tuple[str, ...] = ()
    profile: dict | None = None
    runner_info: dict = field(default_factory=dict)
    environment: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "backend": self.backend,
            "model": self.model,
            "options": self.options,
            "runs": [r.to_dict() for r in self.runs],
            "warnings": list(self.warnings),
            "profile": self.profile,
            "runner_info": self.runner_info,
            "environment": self.environment,
        }

    def __str__(self) -> str:
        lines = [f"{self.backend} ({self.model})" + (f" {self.options}" if self.options else "")]
        lines += [f"  {r}" for r in self.runs]
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.profile:
            lines.append(f"  hot spots ({self.profile['method']}):")
            for op in self.profile["by_op_type"][:5]:
                lines.append(f"    {op['op_type']:<24} {op['share']:6.1%}  {op['total_ms']:.3f} ms x{op['count']}")
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return not self.warnings


# -- measuring ------------------------------------------------------------------------------------------------

def _vm_hwm_kb() -> int | None:
    try:
        match = re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark so it measures this run only (Linux); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(reset_ok: bool) -> float | None:
    kb = _vm_hwm_kb()
    if kb is not None:
        return kb / 1024.0
    if not reset_ok:
        import resource

        # NOTE: ru_maxrss is the process's lifetime peak (KiB on Linux): an upper bound when reset is impossible
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return None


def time_calls(call: Callable[[], object], batch_size: int, settings: BenchSettings | None = None) -> LatencyStats:
    """Time ``call`` (one inference) with warm-up and a stable-median stopping rule.

    Args:
        call: runs one inference.
        batch_size: samples per call (for throughput).
        settings: default ``BenchSettings()``.
    """
    cfg = settings or BenchSettings()
    reset_ok = _reset_peak_rss()
    warm = 0
    start = time.perf_counter()
    while warm < 3 or (time.perf_counter() - start < cfg.warmup_s and warm < 50):
        call()
        warm += 1
    times: list[float] = []
    started = time.perf_counter()
    previous: float | None = None
    calm_rounds = 0
    stable = False
    chunk = max(5, cfg.min_iterations // 2)
    while len(times) < cfg.max_iterations:
        for _ in range(chunk):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        median = float(np.median(times))
        if previous is not None and abs(median - previous) <= cfg.tolerance * median:
            calm_rounds += 1
        else:
            calm_rounds = 0
        previous = median
        if len(times) >= cfg.min_iterations and calm_rounds >= 2:
            stable = True
            break
        if time.perf_counter() - started >= cfg.max_seconds:
            break
    ms = np.asarray(times) * 1000.0
    return LatencyStats(
        batch_size=batch_size,
        p50_ms=float(np.percentile(ms, 50)),
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        std_ms=float(ms.std()),
        iterations=len(times),
        warmup=warm,
        stable=stable,
        peak_rss_mb=_peak_rss_mb(reset_ok),
    )


# -- feeds ----------------------------------------------------------------------------------------------------

def batch_dim(spec: ModelSpec) -> str | None:
    """The named dimension in front of the first input (``batch``), or ``None`` when it is fixed."""
    first = spec.inputs[0].shape[0] if spec.inputs[0].shape else None
    return first if isinstance(first, str) else None


def batched_feeds(spec: ModelSpec, batch_size: int, data: str | Path | None = None, seed: int = 0) -> dict:
    """One feed at ``batch_size``: seeded random (as compare makes them) or ``batch_size`` real samples stacked.

    Raises:
        InvalidInput: the batch size is not 1 and the spec's first dimension is fixed to something else.
    """
    from modelyard.runtime.feeds import iter_feeds

    if batch_size < 1:
        raise InvalidInput(f"batch size must be at least 1, got {batch_size}")
    name = batch_dim(spec)
    if name is None:
        fixed = spec.inputs[0].shape[0] if spec.inputs[0].shape else 1
        if batch_size != fixed:
            raise InvalidInput(f"batch size {batch_size}: input {spec.inputs[0].name!r} has a fixed first dimension "
                               f"{fixed}; name it (e.g. 'batch') in the spec to vary it")
        return next(iter_feeds(spec, 1, data, seed))
    sized = spec.model_copy(update={"dims": {**spec.dims, name: batch_size}}).with_base_dir(spec.base_dir)
    source = data if data is not None else (spec.resolve(spec.dataset) if spec.dataset else None)
    if source is None:
        return next(iter_feeds(sized, 1, None, seed))
    samples = list(iter_feeds(spec, batch_size, source, seed))
    while len(samples) < batch_size:  # fewer real samples than the batch: cycle them
        samples += samples[: batch_size - len(samples)]
    out = {}
    for inp in spec.inputs:
        parts = [s[inp.name] for s in samples[:batch_size]]
        batched_axis = isinstance(inp.shape[0], str) and parts[0].ndim == len(inp.shape)
        out[inp.name] = np.concatenate(parts, axis=0) if batched_axis else parts[0]
    return out


# -- loading with runtime options -----------------------------------------------------------------------------

def check_options(backend_name: str, options: dict) -> dict:
    """Validate runtime options for a backend (see ``RUNTIME_OPTIONS``); returns them without ``None`` values."""
    family = backend_name.partition(":")[0]
    allowed = RUNTIME_OPTIONS.get(family, ())
    clean = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(clean) - set(allowed))
    if unknown:
        raise InvalidInput(f"unknown runtime option(s) for {backend_name}: {', '.join(unknown)} "
                           f"(known: {', '.join(allowed) or 'none'})")
    if "threads" in clean and (not isinstance(clean["threads"], int) or clean["threads"] < 1):
        raise InvalidInput(f"threads must be a positive integer, got {clean['threads']!r}")
    if "graph_optimization" in clean and clean["graph_optimization"] not in _ORT_LEVELS:
        raise InvalidInput(f"graph_optimization must be one of {', '.join(_ORT_LEVELS)}")
    if "execution_mode" in clean and clean["execution_mode"] not in _ORT_MODES:
        raise InvalidInput(f"execution_mode must be one of {', '.join(_ORT_MODES)}")
    if "performance_hint" in clean and clean["performance_hint"] not in _OV_HINTS:
        raise InvalidInput(f"performance_hint must be one of {', '.join(_OV_HINTS)}")
    return clean


def load_runner(backend_name: str, artifact: Artifact, options: dict | None = None, profile_dir: Path | None = None):
    """Load ``artifact`` on ``backend_name`` and apply runtime options (and profiling when ``profile_dir``)."""
    from modelyard.runtime.registry import get_backend

    opts = check_options(backend_name, options or {})
    family = backend_name.partition(":")[0]
    backend = get_backend(backend_name)
    if family == "onnxruntime":
        runner = backend.load(artifact, threads=opts.get("threads"))
        if set(opts) - {"threads"} or profile_dir is not None:
            _rebuild_ort_session(runner, opts, profile_dir)
        return runner
    if family == "openvino":
        runner = backend.load(artifact, precision=opts.get("precision"))
        if set(opts) - {"precision"} or profile_dir is not None:
            _recompile_openvino(runner, opts, profile=profile_dir is not None)
        return runner
    return backend.load(artifact)


def _rebuild_ort_session(runner, opts: dict, profile_dir: Path | None) -> None:
    import onnxruntime as ort

    from modelyard.runtime.onnxruntime_backend import session_options

    so = session_options(opts.get("threads"))
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _ORT_LEVELS[opts.get("graph_optimization", "all")])
    so.execution_mode = getattr(ort.ExecutionMode, _ORT_MODES[opts.get("execution_mode", "sequential")])
    if opts.get("inter_op_threads"):
        so.inter_op_num_threads = int(opts["inter_op_threads"])
    if profile_dir is not None:
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(profile_dir) / "ort_profile")
    # NOTE: the ORT backend only takes `threads` on load; the other knobs need a session built here
    runner.session = ort.InferenceSession(runner.model.SerializeToString(), sess_options=so, providers=runner.providers)
    runner.info["session_options"] = {k: v for k, v in opts.items() if k != "threads"}


def _recompile_openvino(runner, opts: dict, profile: bool) -> None:
    config: dict = {"INFERENCE_PRECISION_HINT": runner.hint}
    if opts.get("threads"):
        config["INFERENCE_NUM_THREADS"] = int(opts["threads"])
    if opts.get("performance_hint"):
        config["PERFORMANCE_HINT"] = _OV_HINTS[opts["performance_hint"]]
    if opts.get("streams"):
        config["NUM_STREAMS"] = int(opts["streams"])
    if profile:
        config["PERF_COUNT"] = True
    try:
        runner.compiled = runner.core.compile_model(runner.model, runner.ov_device, config)
    except RuntimeError as exc:
        raise InvalidInput(f"OpenVINO cannot compile with {config}: {str(exc).splitlines()[0]}") from None
    runner.info["compile_config"] = {k: str(v) for k, v in config.items()}


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch with ``threads`` intra-op threads, restoring the previous count after."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- profiling ------------------------------------------------------------------------------------------------

def _rank(durations: dict[str, list[float]], nodes: dict[str, tuple[str, float]], iterations: int, method: str) -> dict:
    total = sum(sum(v) for v in durations.values()) or 1e-12
    by_type = sorted(
        ({"op_type": op, "count": len(v) // max(1, iterations), "total_ms": sum(v) / iterations / 1000.0,
          "share": sum(v) / total} for op, v in durations.items()),
        key=lambda row: -row["total_ms"],
    )
    hot = sorted(nodes.items(), key=lambda kv: -kv[1][1])[:15]
    return {
        "method": method,
        "iterations": iterations,
        "total_ms": total / iterations / 1000.0,
        "by_op_type": [{**row, "total_ms": round(row["total_ms"], 4), "share": round(row["share"], 4)} for row in by_type],
        "hot_spots": [{"node": name, "op_type": op, "ms": round(us / iterations / 1000.0, 4),
                       "share": round(us / total, 4)} for name, (op, us) in hot],
    }


def profile_operators(backend_name: str, artifact: Artifact, feeds: dict, options: dict | None = None,
                      iterations: int = 10) -> dict | None:
    """Per-operator time from ONNX Runtime's profiler or OpenVINO's performance counters, hot spots ranked.

    Returns ``None`` for backends without a profiler here (torch).
    """
    family = backend_name.partition(":")[0]
    if family not in ("onnxruntime", "openvino"):
        return None
    with tempfile.TemporaryDirectory(prefix="modelyard-profile-") as tmp:
        runner = load_runner(backend_name, artifact, options, profile_dir=Path(tmp))
        checked = runner.check_feeds({k: v for k, v in feeds.items() if k in {i.name for i in runner.inputs}})
        durations: dict[str, list[float]] = {}
        nodes: dict[str, tuple[str, float]] = {}
        if family == "onnxruntime":
            for _ in range(iterations + 1):
                runner.session.run(None, checked)
            trace = json.loads(Path(runner.session.end_profiling()).read_text())
            runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace
                          if e.get("cat") == "Session" and e.get("name") == "model_run")
            warm_end = runs[0][1] if runs else -1  # the first run warms up and is not counted
            for event in trace:
                if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
                    continue
                if event["ts"] <= warm_end:
                    continue
                op = event.get("args", {}).get("op_name", "?")
                node = event["name"].removesuffix("_kernel_time")
                durations.setdefault(op, []).append(float(event["dur"]))
                nodes[node] = (op, nodes.get(node, (op, 0.0))[1] + float(event["dur"]))
            runner.close()
            return _rank(durations, nodes, iterations, "onnxruntime profiler")
        request = runner.compiled.create_infer_request()
        request.infer(checked)  # warm-up, not counted
        for _ in range(iterations):
            request.infer(checked)
            for info in request.get_profiling_info():
                if str(info.status).endswith("NOT_RUN"):
                    continue
                us = info.real_time.total_seconds() * 1e6
                op = f"{info.node_type} ({info.exec_type})"
                durations.setdefault(op, []).append(us)
                nodes[info.node_name] = (op, nodes.get(info.node_name, (op, 0.0))[1] + us)
        return _rank(durations, nodes, iterations, "openvino performance counters")


# -- the command ----------------------------------------------------------------------------------------------

def environment() -> dict:
    """Versions, CPU and thread facts that a benchmark depends on (also the report's environment manifest)."""
    from importlib import metadata

    versions = {}
    for package in ("numpy", "torch", "onnx", "onnxruntime", "openvino", "nncf", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cpu_model, flags = platform.processor() or "", []
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu_model = re.search(r"model name\s*:\s*(.*)", text).group(1).strip() if "model name" in text else cpu_model
        line = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        wanted = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512_fp16",
                  "amx_bf16", "amx_int8", "amx_fp16", "neon", "sve")
        flags = [f for f in (line.group(1).split() if line else []) if f in wanted]
    except (OSError, AttributeError):
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model,
        "cpu_flags": flags,
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }


def benchmark(
    spec: ModelSpec,
    backend: str,
    *,
    batch_sizes: list[int] | None = None,
    options: dict | None = None,
    model_path: str | Path | None = None,
    data: str | Path | None = None,
    seed: int = 0,
    settings: BenchSettings | None = None,
    profile: bool = False,
    cache_dir: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> BenchResult:
    """Benchmark ``spec``'s model on ``backend`` at each batch size.

    Args:
        spec: the model.
        backend: ``backend:device`` (``torch:cpu``, ``onnxruntime:cpu``, ``openvino:cpu``).
        batch_sizes: default ``[1]``.
        options: runtime options (``RUNTIME_OPTIONS``), e.g. ``{"threads": 2}``.
        model_path: a converted artifact to run instead of the spec's model (exported to ONNX when needed).
        data: real samples (default: the spec's dataset or seeded random feeds, as compare).
        seed: seed of random feeds. Default 0.
        settings: timing settings. Default ``BenchSettings()``.
        profile: also profile operators at the first batch size (ORT profiler / OpenVINO counters).
        cache_dir: pass cache for the automatic ONNX export.
        progress: optional ``callable(fraction, message)``.
    """
    from modelyard.core.errors import Unavailable
    from modelyard.migrate.model.compare import default_cache_dir, resolve_artifact
    from modelyard.runtime.registry import get_backend

    report = progress or (lambda fraction, message: None)
    sizes = list(dict.fromkeys(batch_sizes or [1]))
    opts = check_options(backend, options or {})
    ok, why = get_backend(backend).available()
    if not ok:
        raise Unavailable(f"backend {backend} is not available: {why}")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    artifact = resolve_artifact(spec, backend, model_path, cache, cache / "exports" / spec.content_hash()[:16])
    feeds_by_size = {size: batched_feeds(spec, size, data, seed) for size in sizes}
    report(0.05, f"loading {artifact.describe()} on {backend}")
    runner = load_runner(backend, artifact, opts)
    wanted = {i.name for i in runner.inputs}
    runs: list[LatencyStats] = []
    warnings: list[str] = []
    with torch_threads(opts.get("threads") if backend.startswith("torch") else None):
        for index, size in enumerate(sizes):
            report(0.1 + 0.7 * index / len(sizes), f"batch {size}")
            feeds = {k: v for k, v in feeds_by_size[size].items() if k in wanted}
            runner.infer(feeds)  # a first call may compile kernels for this shape: not part of warm-up stats
            stats = time_calls(lambda f=feeds: runner.infer(f), size, settings)
            runs.append(stats)
            if stats.noisy:
                warnings.append(f"batch {size}: latency varies {stats.cv:.0%} (cv > {NOISY_CV:.0%}); the machine is "
                                "busy or throttling, so differences under that are not meaningful")
            if not stats.stable:
                warnings.append(f"batch {size}: the median did not settle within the time cap "
                                f"({stats.iterations} runs)")
    info = dict(runner.info)
    runner.close()
    prof = None
    if profile:
        report(0.85, "profiling operators")
        prof = profile_operators(backend, artifact, feeds_by_size[sizes[0]], opts)
        if prof is None:
            warnings.append(f"no operator profiler for {backend}; profile skipped")
        else:
            prof["batch_size"] = sizes[0]
    report(1.0, "done")
    return BenchResult(backend, artifact.describe(), opts, tuple(runs), tuple(warnings), prof,
                       _jsonable(info), environment())


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
