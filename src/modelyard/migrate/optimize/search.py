"""Accuracy-gated optimisation: the fastest configuration of a model on a target that keeps its accuracy.

The search (Olive's passes + search strategy, NNCF's accuracy control):

1. Measure the **baseline**: the reference framework as the customer runs it today (torch eager fp32 on the
   target device) at ``batch_size``, and collect the reference outputs on ``samples`` gate inputs once.
2. Every **variant** of the space (``space``: backend x passes x precision) is converted (passes cached
   by hash), **gated** (``gate``: the compare engine's tensor verdicts + the task metric; a candidate that
   loses more than ``max_accuracy_drop`` is rejected) and benchmarked with default runtime options.
3. An INT8 variant that fails the gate is retried with the layers the layer-wise compare **blames** most kept in
   float (1, then 3, then 8 layers) before it is given up.
4. The best accepted variants (``top_k``; all of them with ``strategy="exhaustive"``) are benchmarked over their
   runtime-option grid (threads, graph optimisation, execution mode, performance hint).
5. Stop at ``budget_s``; return every candidate, the Pareto front (speed vs accuracy) and the best candidate, whose
   artifact is copied to ``<out>/best``.

Measurements are cached (``<cache>/optimize``) by ``measurement_key``: the options' ``content_hash()`` plus the
digests of the model, the data and the machine; a rerun re-measures nothing it has measured, whatever its budget.

Example::

    result = search(load_spec("resnet.yaml"), OptimizeSpec(target="cpu", budget_s=300), out_dir=Path("opt"))
    # or, keyword form: optimize(load_spec("resnet.yaml"), "cpu", budget_s=300, out_dir=Path("opt"))
    print(result)                   # baseline, best, speedup, candidates table
    result.to_dict()                # the "modelyard.optimize/1" JSON
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from modelyard.core.errors import ModelyardError
from modelyard.migrate.action_spec import validated
from modelyard.migrate.model.bench import BenchSettings, LatencyStats
from modelyard.migrate.optimize.space import Candidate, Space, Variant, build_space, keep_float_variant
from modelyard.migrate.optimize.spec import OptimizeSpec
from modelyard.runtime.spec import Artifact, ModelSpec

SCHEMA = "modelyard.optimize/1"
OBJECTIVES = ("latency", "throughput")
FALLBACK_LAYERS = (1, 3, 8)
SLOW_GATE_SAMPLES = 32


@dataclass(frozen=True)
class CandidateResult:
    """One measured candidate. ``to_dict()`` is a ``candidates[]`` entry of ``modelyard.optimize/1``."""

    label: str
    backend: str
    passes: tuple[dict, ...]
    options: dict
    accuracy: dict
    accepted: bool
    reason: str
    latency: LatencyStats | None
    speedup: float | None
    artifact: str | None
    cached: bool = False
    pareto: bool = False
    parent: str | None = None

    @property
    def latency_ms_p50(self) -> float | None:
        return self.latency.p50_ms if self.latency else None

    @property
    def throughput(self) -> float | None:
        return self.latency.throughput if self.latency else None

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "backend": self.backend,
            "passes": [dict(p) for p in self.passes],
            "options": self.options,
            "latency_ms_p50": _round(self.latency_ms_p50),
            "throughput": _round(self.throughput, 2),
            "speedup": _round(self.speedup, 3),
            "accuracy": self.accuracy,
            "accepted": self.accepted,
            "reason": self.reason,
            "pareto": self.pareto,
            "cached": self.cached,
            "fallback_of": self.parent,
            "latency": self.latency.to_dict() if self.latency else None,
            "artifact": self.artifact,
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class OptimizeResult:
    """The search's outcome; ``bool()`` is True when a candidate was accepted."""

    target: str
    objective: str
    batch_size: int
    max_accuracy_drop: float
    strategy: str
    baseline: dict
    best: CandidateResult | None
    best_artifact: str | None
    candidates: tuple[CandidateResult, ...]
    stopped: str
    notes: tuple[str, ...] = ()
    skipped: tuple[dict, ...] = ()
    seconds: float = 0.0
    budget_s: float | None = None

    def __bool__(self) -> bool:
        return self.best is not None

    def to_dict(self) -> dict:
        best = None
        if self.best is not None:
            best = {
                "label": self.best.label,
                "backend": self.best.backend,
                "passes": [dict(p) for p in self.best.passes],
                "options": self.best.options,
                "artifact": self.best_artifact,
                "latency_ms_p50": _round(self.best.latency_ms_p50),
                "throughput": _round(self.best.throughput, 2),
                "speedup": _round(self.best.speedup, 3),
                "accuracy": self.best.accuracy,
            }
        return {
            "schema": SCHEMA,
            "target": self.target,
            "objective": self.objective,
            "batch_size": self.batch_size,
            "max_accuracy_drop": self.max_accuracy_drop,
            "strategy": self.strategy,
            "baseline": self.baseline,
            "best": best,
            "candidates": [c.to_dict() for c in self.candidates],
            "pareto": [i for i, c in enumerate(self.candidates) if c.pareto],
            "stopped": self.stopped,
            "notes": list(self.notes),
            "skipped": list(self.skipped),
            "budget_s": self.budget_s,
            "seconds": round(self.seconds, 2),
        }

    def __str__(self) -> str:
        base = self.baseline
        lines = [f"baseline {base['backend']}: p50 {base['latency_ms_p50']:.3f} ms, {base['throughput']:.1f}/s"]
        if self.best is not None:
            acc = self.best.accuracy
            lines.append(f"best {self.best.label} {self.best.options}: p50 {self.best.latency_ms_p50:.3f} ms, "
                         f"{self.best.speedup:.2f}x, {acc['metric']} {acc['value']:.4f}")
        else:
            lines.append("no candidate kept the accuracy")
        lines.append(f"{len(self.candidates)} candidates, {sum(c.accepted for c in self.candidates)} accepted; "
                     f"stopped: {self.stopped}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


class _Engine:
    """State of one optimisation run (artifacts, gate and bench caches, results, budget)."""

    def __init__(self, spec: ModelSpec, space: Space, *, objective: str, batch_size: int, max_accuracy_drop: float,
                 budget_s: float | None, out_dir: Path, cache_dir: Path, use_cache: bool, samples: int, data,
                 seed: int, settings: BenchSettings, report: Callable[[float, str], None], cache_key: str):
        self.spec = spec
        self.space = space
        self.objective = objective
        self.batch_size = batch_size
        self.max_drop = max_accuracy_drop
        self.budget_s = budget_s
        self.out_dir = out_dir
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.samples = samples
        self.data = data
        self.seed = seed
        self.settings = settings
        self.report = report
        self.started = time.perf_counter()
        self.results: list[CandidateResult] = []
        self.notes: list[str] = []
        self.artifacts: dict[str, tuple[Artifact, list]] = {}
        self.gates: dict[str, dict] = {}
        self.reference = None
        self.baseline_stats: LatencyStats | None = None
        self.feeds = None
        self.onnx_fp32: Artifact | None = None
        self.variants_by_label: dict[str, Variant] = {}
        self.context_hash = cache_key

    # -- budget and caching -------------------------------------------------------------------------------

    def over_budget(self) -> bool:
        return self.budget_s is not None and time.perf_counter() - self.started >= self.budget_s

    def _cache_file(self, kind: str, key: str) -> Path:
        digest = hashlib.sha256(f"{self.context_hash}:{kind}:{key}".encode()).hexdigest()[:32]
        return self.cache_dir / "optimize" / f"{kind}-{digest}.json"

    def _cached(self, kind: str, key: str) -> dict | None:
        path = self._cache_file(kind, key)
        if not self.use_cache or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _store(self, kind: str, key: str, value: dict) -> None:
        path = self._cache_file(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(value, default=str), encoding="utf-8")
        tmp.replace(path)

    # -- building blocks ----------------------------------------------------------------------------------

    def source_onnx(self) -> Artifact | None:
        """The fp32 ONNX every chain starts from (exported once, cached)."""
        if self.onnx_fp32 is None:
            source = self.spec.source()
            if source.format == "onnx":
                self.onnx_fp32 = source
            elif source.format == "torch":
                from modelyard.migrate.model.passes import get_pass

                folder = self.out_dir / "artifacts" / "onnx"
                self.onnx_fp32 = get_pass("torch-to-onnx").run(source, {}, folder, self.cache_dir / "passes").artifact
        return self.onnx_fp32

    def build(self, variant: Variant) -> tuple[Artifact, list]:
        """Run the variant's pass chain; returns the final artifact and each step's artifact."""
        key = variant.key()
        if key not in self.artifacts:
            from modelyard.migrate.model.passes import get_pass

            artifact = self.spec.source() if self.spec.source_format == "openvino" else self.source_onnx()
            steps = []
            folder = self.out_dir / "artifacts" / key[:12]
            for name, config in variant.pass_list():
                artifact = get_pass(name).run(artifact, config, folder, self.cache_dir / "passes").artifact
                steps.append((name, artifact))
            self.artifacts[key] = (artifact, steps)
        return self.artifacts[key]

    def load_reference(self) -> None:
        from modelyard.migrate.model.bench import batched_feeds, time_calls
        from modelyard.migrate.optimize.gate import ReferenceOutputs
        from modelyard.runtime.registry import get_backend
        from modelyard.runtime.targets import default_backend

        source = self.spec.source()
        reference = default_backend(source.format)
        self.reference_backend = reference
        self.report(0.01, f"reference outputs on {self.samples} samples ({reference})")
        self.reference = ReferenceOutputs.collect(self.spec, reference, source, self.samples, self.data, self.seed)
        baseline = self.space.baseline
        ok, why = get_backend(baseline).available()
        if not ok:
            self.notes.append(f"baseline {baseline} is not available here ({why}); measured {reference} instead")
            baseline = reference
        self.baseline_backend = baseline
        self.feeds = batched_feeds(self.spec, self.batch_size, self.data, self.seed)
        cached = self._cached("baseline", baseline)
        if cached:
            self.baseline_stats = LatencyStats(**cached)
            return
        self.report(0.03, f"baseline latency on {baseline}")
        with get_backend(baseline).load(source) as runner:
            feeds = {k: v for k, v in self.feeds.items() if k in {i.name for i in runner.inputs}}
            runner.infer(feeds)
            self.baseline_stats = time_calls(lambda: runner.infer(feeds), self.batch_size, self.settings)
        self._store("baseline", baseline, asdict(self.baseline_stats))

    def speedup(self, stats: LatencyStats) -> float:
        base = self.baseline_stats
        if self.objective == "throughput":
            return stats.throughput / base.throughput if base.throughput else 0.0
        return base.p50_ms / stats.p50_ms if stats.p50_ms else 0.0

    def score(self, result: CandidateResult) -> float:
        """Lower is better, for the objective."""
        return float("inf") if result.latency is None else self._score_of(result.latency)

    def _score_of(self, stats: LatencyStats) -> float:
        return stats.p50_ms if self.objective == "latency" else -stats.throughput

    def evaluate(self, candidate: Candidate, with_bench: bool = True) -> CandidateResult:
        from modelyard.migrate.model.bench import time_calls
        from modelyard.migrate.optimize.gate import gate, judge
        from modelyard.runtime.registry import get_backend

        variant = candidate.variant
        self.variants_by_label.setdefault(variant.label, variant)
        self.report(min(0.95, 0.05 + 0.9 * (time.perf_counter() - self.started) / (self.budget_s or 600)),
                    f"candidate {len(self.results) + 1}: {candidate.describe()}")
        try:
            artifact, _ = self.build(variant)
        except ModelyardError as exc:
            result = CandidateResult(variant.label, variant.backend, tuple(variant.passes_json()),
                                     candidate.option_dict, {}, False, f"conversion failed: {exc}", None, None, None,
                                     parent=variant.parent)
            self.results.append(result)
            return result
        stats = None
        cached = True
        if with_bench:
            stored = self._cached("bench", candidate.key())
            if stored:
                stats = LatencyStats(**stored)
            else:
                with get_backend(variant.backend).load(artifact, candidate.option_dict) as runner:
                    feeds = {k: v for k, v in self.feeds.items() if k in {i.name for i in runner.inputs}}
                    runner.infer(feeds)
                    stats = time_calls(lambda: runner.infer(feeds), self.batch_size, self.settings)
                self._store("bench", candidate.key(), asdict(stats))
                cached = False
        # NOTE: a candidate slower than the best accepted one cannot win; a short gate says enough about it
        leader = min((self.score(r) for r in self.results if r.accepted and r.latency), default=None)
        slow = stats is not None and leader is not None and self._score_of(stats) > leader
        limit = min(self.samples, SLOW_GATE_SAMPLES) if slow else self.samples
        full_key = f"{variant.key()}:{self.samples}"
        gate_key = full_key if full_key in self.gates else f"{variant.key()}:{limit}"
        accuracy = self.gates.get(gate_key) or self._cached("gate", gate_key)
        if accuracy is None:
            cached = False
            with get_backend(variant.backend).load(artifact, {"precision": variant.precision}) as runner:
                accuracy = gate(self.spec, self.reference, runner, variant.numeric_class, 1.0, limit=limit)
            if limit < self.samples:
                accuracy["note"] = f"gated on {limit} samples: slower than the best accepted candidate"
            self._store("gate", gate_key, accuracy)
        self.gates[gate_key] = accuracy
        accepted, reason = judge(accuracy, self.max_drop)
        result = CandidateResult(
            variant.label, variant.backend, tuple(variant.passes_json()), candidate.option_dict,
            {k: v for k, v in accuracy.items() if k not in ("accepted", "reason")}, accepted, reason, stats,
            self.speedup(stats) if stats else None, str(artifact.path) if artifact.path else None, cached,
            parent=variant.parent,
        )
        self.results.append(result)
        return result

    def fallback(self, variant: Variant, first: CandidateResult) -> None:
        """Keep the most blamed layers in float, 1, 3 then 8 of them, until the gate passes."""
        from modelyard.migrate.model.passes.keep_float import nodes_of_layers
        from modelyard.migrate.optimize.gate import blame_layers

        _, steps = self.build(variant)
        int8_onnx = next((a for name, a in steps if a.format == "onnx" and ("int8" in name)), None)
        fp32 = self.source_onnx()
        if int8_onnx is None or fp32 is None:
            return
        self.report(0.5, f"blaming layers of {variant.label}")
        try:
            ranked = blame_layers(self.spec, self.reference_backend, int8_onnx.path, samples=4,
                                  cache_dir=self.cache_dir / "passes", work_dir=self.out_dir / "artifacts" / "compare")
        except ModelyardError as exc:
            self.notes.append(f"{variant.label}: layer-wise blame failed ({exc}); no float fallback")
            return
        if not ranked:
            self.notes.append(f"{variant.label}: the layer-wise compare blames no single layer; no float fallback")
            return
        for count in FALLBACK_LAYERS:
            if count > len(ranked) and count != FALLBACK_LAYERS[0]:
                break
            if self.over_budget():
                return
            layers = [r["name"] for r in ranked[:count]]
            nodes = nodes_of_layers(fp32.path, layers)
            retry = keep_float_variant(variant, nodes, layers) if nodes else None
            if retry is None:
                self.notes.append(f"{variant.label}: cannot map blamed layers {layers} to graph nodes")
                return
            if self.evaluate(self.space.default_candidate(retry)).accepted:
                return

    # -- the search ---------------------------------------------------------------------------------------

    def run(self, strategy: str, top_k: int) -> str:
        stopped = "exhausted"
        fell_back: set[str] = set()
        for variant in self.space.variants:
            if self.over_budget():
                return "budget"
            first = self.evaluate(self.space.default_candidate(variant))
            if not first.accepted and variant.is_int8 and first.artifact and variant.backend not in fell_back:
                fell_back.add(variant.backend)  # NOTE: one blame per backend: the rest would mostly repeat it
                self.fallback(variant, first)
        accepted = sorted((r for r in self.results if r.accepted and r.latency), key=self.score)
        chosen: list[str] = []
        for result in accepted:
            if result.label not in chosen:
                chosen.append(result.label)
        if strategy == "search":
            chosen = chosen[:top_k]
        for label in chosen:
            variant = self.variants_by_label.get(label)
            if variant is None:
                continue
            for candidate in self.space.candidates(variant)[1:]:
                if self.over_budget():
                    return "budget"
                self.evaluate(candidate)
        return stopped


def optimize(
    spec: ModelSpec,
    target: str = "cpu",
    *,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    settings: BenchSettings | None = None,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> OptimizeResult:
    """Keyword form of ``search``: ``options`` are ``OptimizeSpec``'s fields (``objective``, ``batch_size``,
    ``max_accuracy_drop``, ``budget_s``, ``samples``, ``data``, ``calibration`` or ``calib``, ``seed``, ``strategy``,
    ``top_k``, ``min_speedup``); a bad one raises ``InvalidInput`` naming its CLI option."""
    if "calibration" in options:
        options["calib"] = options.pop("calibration")
    for name in ("data", "calib"):
        if options.get(name) is not None:
            options[name] = str(options[name])
    spec_options = validated(OptimizeSpec, {"target": target, **options})
    return search(spec, spec_options, out_dir=out_dir, cache_dir=cache_dir, use_cache=use_cache, settings=settings,
                  progress=progress)


def search(
    spec: ModelSpec,
    options: OptimizeSpec,
    *,
    out_dir: Path | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    settings: BenchSettings | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> OptimizeResult:
    """Find the fastest accurate configuration of ``spec`` as ``options`` say (see the module docstring).

    Args:
        spec: the model.
        options: target, objective, budget, gate samples... (``OptimizeSpec``, the defaults' one declaration).
        out_dir: where artifacts and ``best/`` go. Default ``./optimized``.
        cache_dir: pass and result cache (default ``$MODELYARD_HOME/cache``).
        use_cache: reuse cached gate and benchmark results. Default True.
        settings: benchmark timing settings.
        progress: optional ``callable(fraction, message)``.
    """
    target, objective, batch_size = options.target, options.objective, options.batch_size
    max_accuracy_drop, budget_s, samples = options.max_accuracy_drop, options.budget_s, options.samples
    data, calibration, seed, strategy = options.data, options.calib, options.seed, options.strategy
    top_k, min_speedup = options.top_k, options.min_speedup
    from modelyard.core.settings import default_home

    report = progress or (lambda fraction, message: None)
    cache = Path(cache_dir) if cache_dir else default_home() / "cache"
    out = Path(out_dir or "optimized")
    out.mkdir(parents=True, exist_ok=True)
    space = build_space(target, spec.source_format, calibration)
    settings = settings or BenchSettings(max_seconds=2.0)
    engine = _Engine(spec, space, objective=objective, batch_size=batch_size, max_accuracy_drop=max_accuracy_drop,
                     budget_s=budget_s, out_dir=out, cache_dir=cache, use_cache=use_cache, samples=samples, data=data,
                     seed=seed, settings=settings, report=report,
                     cache_key=measurement_key(spec, options, settings))
    engine.load_reference()
    stopped = engine.run(strategy, top_k)
    results = _mark_pareto(engine.results)
    accepted = [r for r in results if r.accepted and r.latency]
    best = min(accepted, key=engine.score) if accepted else None
    notes = list(engine.notes)
    if not space.variants:
        notes.append(f"no backend for {target} runs here: " + "; ".join(f"{s['backend']}: {s['reason']}"
                                                                         for s in space.skipped))
    if best is None and results:
        closest = max((r for r in results if r.accuracy), key=lambda r: r.accuracy.get("value", 0), default=None)
        if closest is not None:
            notes.append(f"no candidate kept {closest.accuracy['metric']} within {max_accuracy_drop:.2%}; the closest "
                         f"was {closest.label}: {closest.reason}")
    if stopped == "budget":
        notes.append(f"stopped at the {budget_s:g} s budget after {len(results)} candidates; raise --budget-s to "
                     "search the rest")
    if best is not None and min_speedup is not None and (best.speedup or 0) < min_speedup:
        faster = [r for r in results if not r.accepted and r.speedup and r.speedup >= min_speedup]
        why = (f"; the faster candidates lose accuracy ({faster[0].label}: {faster[0].reason})" if faster
               else "; no candidate measured is that fast on this hardware")
        notes.append(f"goal {min_speedup:g}x speedup not reached: the best accepted is {best.speedup:.2f}x{why}")
    best_artifact = _publish_best(best, out / "best") if best else None
    base = engine.baseline_stats
    result = OptimizeResult(
        target=target, objective=objective, batch_size=batch_size, max_accuracy_drop=max_accuracy_drop,
        strategy=strategy,
        baseline={"backend": engine.baseline_backend, "latency_ms_p50": round(base.p50_ms, 4),
                  "throughput": round(base.throughput, 2), "latency": base.to_dict(),
                  "reference": engine.reference_backend, "reference_seconds": round(engine.reference.seconds, 2)},
        best=best, best_artifact=best_artifact, candidates=tuple(results), stopped=stopped, notes=tuple(notes),
        skipped=space.skipped, seconds=time.perf_counter() - engine.started, budget_s=budget_s,
    )
    tmp = out / "optimize.json.tmp"
    tmp.write_text(json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8")
    tmp.replace(out / "optimize.json")
    report(1.0, "done")
    return result


def measurement_key(spec: ModelSpec, options: OptimizeSpec, settings: BenchSettings) -> str:
    """The key of the optimiser's measurement cache: ``options.content_hash()`` (what a measurement depends on;
    see ``OptimizeSpec``) plus the digests of its inputs (the model, the gate data, the calibration data) and of
    what the timings depend on beyond the spec (this machine's CPU and packages, the timing settings)."""
    from modelyard.migrate.model.bench import environment
    from modelyard.migrate.model.passes.onnx import calibration_digest

    env = environment()
    machine = json.dumps([env["cpu"], env["cpu_count"], env["packages"], asdict(settings)], sort_keys=True,
                         default=str)
    return options.cache_key(spec.content_hash(), calibration_digest(spec, options.data),
                             calibration_digest(spec, options.calib), hashlib.sha256(machine.encode()).hexdigest())


def _mark_pareto(results: list[CandidateResult]) -> list[CandidateResult]:
    """Flag the candidates no other candidate beats on both speed and accuracy."""
    from dataclasses import replace

    points = [(r.latency.p50_ms, r.accuracy.get("drop")) if r.latency and r.accuracy else None for r in results]
    marked = []
    for i, result in enumerate(results):
        p = points[i]
        front = p is not None and not any(
            q is not None and q != p and q[0] <= p[0] and q[1] <= p[1] for j, q in enumerate(points) if j != i
        )
        marked.append(replace(result, pareto=bool(front)))
    return marked


def _publish_best(best: CandidateResult, folder: Path) -> str | None:
    """Copy the best artifact (and its side files) to ``folder`` with a ``runtime.json``; returns its path."""
    if best.artifact is None:
        return None
    source = Path(best.artifact)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stem = source.name.removesuffix(".xml").removesuffix(".onnx")
    for sibling in source.parent.iterdir():
        if sibling.is_file() and sibling.name.startswith(stem) and sibling.name.removeprefix(stem)[:1] in (".", ""):
            shutil.copy2(sibling, folder / sibling.name)
    runtime = {"schema": "modelyard.runtime-config/1", "backend": best.backend, "options": best.options,
               "passes": [dict(p) for p in best.passes], "model": source.name}
    (folder / "runtime.json").write_text(json.dumps(runtime, indent=1), encoding="utf-8")
    return str(folder / source.name)
