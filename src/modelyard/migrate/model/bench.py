"""Benchmark engine: latency percentiles, throughput, peak memory and an optional per-operator profile.

For each batch size: warm up, then time ``Runner.infer`` in rounds until the median is stable (two rounds in a
row move it by less than ``tolerance``) or the time cap is reached. Reported: p50/p90/p99/mean latency,
throughput (``batch x 1000 / mean ms``), the coefficient of variation (std / mean, with a warning when the machine
is too noisy to trust small differences) and the peak resident memory of the run.

Feeds are the compare engine's (``modelyard.runtime.feeds``: seeded random within the spec's ranges, or real data),
with the spec's batch dimension set to each batch size.

Runtime options are the backend's own load options (``Backend.options_model``: ONNX Runtime's threads, graph
optimisation level and execution mode, OpenVINO's precision hint, threads, performance hint and streams, torch's
threads), validated by the backend; the operator profile is the runner's ``profile`` hook.

Example::

    result = benchmark(load_spec("m.yaml"), "openvino:cpu", batch_sizes=[1, 8], profile=True)
    print(result)          # one line per batch size, then the hot spots
    result.to_dict()       # the "modelyard.benchmark/1" JSON
"""

from __future__ import annotations

import math
import os
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.specs import BenchmarkSpec
from modelyard.runtime.spec import ModelSpec

SCHEMA = "modelyard.benchmark/1"
NOISY_CV = 0.10


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


# -- runtime options and profiles ----------------------------------------------------------------------------

def check_options(backend_name: str, options: dict) -> dict:
    """Validate runtime options for a backend (its ``options_model``); returns the ones set, without ``None``."""
    from modelyard.runtime.registry import get_backend

    return get_backend(backend_name).check_options(options or {}).given()


def _fed(runner, feeds: dict) -> dict:
    wanted = {i.name for i in runner.inputs}
    return {k: v for k, v in feeds.items() if k in wanted}


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
        options: the backend's load options (``Backend.options_model``), e.g. ``{"threads": 2}``.
        model_path: a converted artifact to run instead of the spec's model (exported to ONNX when needed).
        data: real samples (default: the spec's dataset or seeded random feeds, as compare).
        seed: seed of random feeds. Default 0.
        settings: timing settings. Default ``BenchSettings()``.
        profile: also profile operators at the first batch size (the runner's ``profile`` hook).
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
    runs: list[LatencyStats] = []
    warnings: list[str] = []
    prof = None
    with get_backend(backend).load(artifact, opts) as runner:
        for index, size in enumerate(sizes):
            report(0.1 + 0.7 * index / len(sizes), f"batch {size}")
            feeds = _fed(runner, feeds_by_size[size])
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
        if profile:
            report(0.85, "profiling operators")
            measured = runner.profile(_fed(runner, feeds_by_size[sizes[0]]))
            if measured is None:
                warnings.append(f"no operator profiler for {backend}; profile skipped")
            else:
                prof = {**measured.to_dict(), "batch_size": sizes[0]}
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


def run_benchmark(
    spec: ModelSpec,
    options: BenchmarkSpec,
    *,
    cache_dir: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> BenchResult:
    """Benchmark as ``options`` (``BenchmarkSpec``, the one declaration the CLI and job kind share) say."""
    return benchmark(
        spec, options.backend, batch_sizes=list(options.batch_sizes), options=options.options,
        model_path=options.model, data=options.data, seed=options.seed, profile=options.profile,
        settings=BenchSettings(max_seconds=options.max_seconds), cache_dir=cache_dir, progress=progress,
    )
