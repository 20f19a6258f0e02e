"""Precision comparison: run a reference and a target on the same feeds and return a frozen CompareResult.

Per output: max abs/rel err, mean abs err, RMSE, cosine, SQNR, ‰/1 % error ratios, nan/inf mismatches, allclose
(torch.testing's rtol/atol for the precision class) and a pass/warn/fail verdict (see ``metrics``). With a
``task`` in the spec: top-1/top-k agreement, prediction relative error or embedding cosine. The *noise floor* is the
reference against itself in float64 (torch references) or a repeated run (others); each output's error is
reported as a multiple of it and the pass limit on max abs err widens to ``noise_floor_factor`` x the floor.

Example::

    result = compare_models(load_spec("m.yaml"), "torch:cpu", "onnxruntime:cpu", samples=8)
    print(result)            # verdict card
    result.to_dict()         # the "modelyard.compare/1" JSON
    bool(result)             # True only for "pass"
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.metrics import TaskStats, TensorStats, ThresholdSet, verdict_for, worst
from modelyard.runtime.spec import Artifact, ModelSpec, artifact_from_path

SCHEMA = "modelyard.compare/1"


@dataclass(frozen=True)
class CompareResult:
    """The outcome of one comparison; ``to_dict()`` is the ``modelyard.compare/1`` JSON, ``bool()`` is pass."""

    reference: str
    target: str
    reference_model: str
    target_model: str
    samples: int
    verdict: str
    reasons: tuple[str, ...]
    thresholds: dict
    noise_floor: dict
    outputs: tuple[dict, ...]
    task: dict | None
    layers: tuple[dict, ...] = ()
    first_divergence: dict | None = None
    layerwise: dict | None = None
    backend_info: dict = field(default_factory=dict)
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "reference": self.reference,
            "target": self.target,
            "reference_model": self.reference_model,
            "target_model": self.target_model,
            "samples": self.samples,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "thresholds": self.thresholds,
            "noise_floor": self.noise_floor,
            "outputs": [dict(o) for o in self.outputs],
            "task": self.task,
            "layers": [dict(layer) for layer in self.layers],
            "first_divergence": self.first_divergence,
            "layerwise": self.layerwise,
            "backend_info": self.backend_info,
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        lines = [f"{self.verdict.upper()}: {self.target} ({self.target_model}) vs {self.reference} on {self.samples} samples"]
        lines += [f"  - {r}" for r in self.reasons]
        for o in self.outputs:
            cos = "n/a" if o["cosine"] is None else f"{o['cosine']:.6f}"
            err = "n/a" if o["max_abs_err"] is None else f"{o['max_abs_err']:.3g}"
            sqnr = "exact" if o["sqnr_db"] is None else f"{o['sqnr_db']:.1f} dB"
            lines.append(f"  {o['name']}: {o['verdict']} cosine={cos} max_abs_err={err} sqnr={sqnr}")
        if self.task:
            lines.append(f"  task {self.task['type']}: {self.task.get('verdict')} {_task_summary(self.task)}")
        if self.first_divergence:
            fd = self.first_divergence
            lines.append(f"  first divergence: #{fd['index']} {fd['name']} ({fd['target_name']}), {fd['kind']}")
        elif self.layers:
            lines.append(f"  {len(self.layers)} layers compared, no divergence")
        return "\n".join(lines)


def _task_summary(task: dict) -> str:
    if "top1_agreement" in task:
        return f"top-1 {task['top1_agreement']:.3f}, top-{task['top_k']} {task['topk_agreement']:.3f}"
    if "relative_error" in task:
        return f"relative error {task['relative_error']}"
    if "mean_cosine" in task:
        return f"mean cosine {task['mean_cosine']:.5f}"
    return ""


def default_cache_dir() -> Path:
    from modelyard.core.settings import default_home

    return default_home() / "cache" / "passes"


def resolve_artifact(
    spec: ModelSpec, backend_name: str, model_path: str | Path | None, cache_dir: Path, work_dir: Path
) -> Artifact:
    """What ``backend_name`` should run: ``model_path`` when given, else the spec's source, converted to ONNX
    (cached) when the backend cannot run the source format."""
    from modelyard.runtime.registry import get_backend

    if model_path is not None:
        return artifact_from_path(model_path, spec)
    backend = get_backend(backend_name)
    source = spec.source()
    if source.format in backend.formats:
        return source
    if source.format == "torch" and "onnx" in backend.formats:
        from modelyard.migrate.model.passes import convert

        return convert(spec, "onnx", out_dir=work_dir, cache_dir=cache_dir).artifact
    raise InvalidInput(f"backend {backend_name} cannot run a {source.format} model; pass --target-model")


def _align_outputs(ref: dict[str, np.ndarray], tgt: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    if set(ref) == set(tgt):
        return [(name, name) for name in ref]
    if len(ref) == len(tgt):
        return list(zip(ref, tgt, strict=True))
    raise InvalidInput(
        f"reference and target disagree on outputs: reference has {list(ref)}, target has {list(tgt)}"
    )


def _load(backend_name: str, artifact: Artifact, **options):
    from modelyard.runtime.registry import get_backend

    return get_backend(backend_name).load(artifact, **options)


def _floor_runner(reference: str, spec: ModelSpec, ref_artifact: Artifact):
    """The float64 torch:cpu copy of a torch reference, or ``None`` (then the floor is a repeated run)."""
    if ref_artifact.format != "torch":
        return None, "repeat"
    return _load("torch:cpu", ref_artifact, dtype="float64"), "fp64"


def compare_models(
    spec: ModelSpec,
    reference: str = "torch:cpu",
    target: str = "onnxruntime:cpu",
    *,
    target_model: str | Path | None = None,
    samples: int = 8,
    data: str | Path | None = None,
    seed: int = 0,
    thresholds: ThresholdSet | None = None,
    noise_floor_samples: int = 2,
    layerwise: bool = False,
    layer_depth: int | None = None,
    replay_samples: int = 2,
    dump_dir: Path | None = None,
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> CompareResult:
    """Compare ``target`` against ``reference`` on ``samples`` feeds.

    Args:
        spec: the model and its inputs.
        reference: ``backend:device`` of the reference (default ``torch:cpu``).
        target: ``backend:device`` of the target (default ``onnxruntime:cpu``).
        target_model: an artifact the user converted (``.onnx``/``.xml``); default: the spec's model, exported to
            ONNX when the target needs it.
        samples: feeds to compare (default 8).
        data: real samples (see ``modelyard.runtime.feeds``); default the spec's dataset or seeded random feeds.
        seed: seed of random feeds (default 0).
        thresholds: default: the preset matching the target's precision (fp32/fp16/bf16/int8).
        noise_floor_samples: samples used for the noise floor (default 2; 0 turns it off).
        layerwise: also compare layer by layer, find the first divergence and classify it local/accumulated.
        layer_depth: compare modules truncated at this many dotted path components (default: leaves).
        replay_samples: samples used to replay divergent layers (default 2).
        dump_dir: stream every compared layer's tensors here (``.npy`` per sample and side); default: no dumps.
        cache_dir: pass cache for automatic ONNX export (default ``$MODELYARD_HOME/cache/passes``).
        work_dir: where automatic exports are written (default: a folder in ``cache_dir``).
        progress: optional ``callable(fraction, message)``.
    """
    started = time.perf_counter()
    if samples < 1:
        raise InvalidInput(f"samples must be at least 1, got {samples}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    work_dir = Path(work_dir) if work_dir else cache_dir / "exports" / spec.content_hash()[:16]
    report = progress or (lambda fraction, message: None)

    report(0.0, "loading models")
    from modelyard.core.errors import Unavailable
    from modelyard.runtime.registry import get_backend

    for name in (reference, target):  # before any export: an unavailable backend should fail fast
        ok, why = get_backend(name).available()
        if not ok:
            raise Unavailable(f"backend {name} is not available: {why}")
    ref_artifact = resolve_artifact(spec, reference, None, cache_dir, work_dir)
    tgt_artifact = resolve_artifact(spec, target, target_model, cache_dir, work_dir)
    ref_runner = _load(reference, ref_artifact)
    tgt_options = {"depth": layer_depth} if layer_depth is not None and tgt_artifact.format != "torch" else {}
    tgt_runner = _load(target, tgt_artifact, **tgt_options)
    if thresholds is None:
        precision = tgt_runner.info.get("precision")
        thresholds = ThresholdSet(preset=precision if precision in ("fp32", "fp16", "bf16", "int8") else "fp32")
    floor_runner, floor_method = (None, "off")
    if noise_floor_samples > 0:
        floor_runner, floor_method = _floor_runner(reference, spec, ref_artifact)

    def feeds_iter() -> Iterator[dict[str, np.ndarray]]:
        from modelyard.runtime.feeds import iter_feeds

        return iter_feeds(spec, samples, data, seed)

    stats: dict[str, TensorStats] = {}
    floor_stats: dict[str, TensorStats] = {}
    pairs: list[tuple[str, str]] | None = None
    task_stats: TaskStats | None = None
    count = 0
    for index, feeds in enumerate(feeds_iter()):
        report(0.05 + 0.45 * index / samples, f"sample {index + 1}/{samples}")
        ref_out = ref_runner.infer(feeds)
        tgt_out = tgt_runner.infer(feeds)
        if pairs is None:
            pairs = _align_outputs(ref_out, tgt_out)
            for ref_name, _ in pairs:
                limits = thresholds.for_output(ref_name)
                stats[ref_name] = TensorStats(ref_name, limits.rtol, limits.atol)
                floor_stats[ref_name] = TensorStats(ref_name)
            if spec.task and spec.task.type in ("classification", "regression", "embedding"):
                task_output = spec.task.output or pairs[0][0]
                if task_output not in ref_out:
                    raise InvalidInput(f"spec.task.output {task_output!r} is not an output ({list(ref_out)})")
                task_stats = TaskStats(spec.task.type, task_output, spec.task.top_k)
        for ref_name, tgt_name in pairs:
            stats[ref_name].update(ref_out[ref_name], tgt_out[tgt_name])
        if task_stats is not None:
            name = task_stats.output
            tgt_name = dict(pairs)[name]
            task_stats.update(ref_out[name], tgt_out[tgt_name])
        if index < noise_floor_samples and floor_method != "off":
            floor_out = floor_runner.infer(feeds) if floor_runner is not None else ref_runner.infer(feeds)
            for ref_name, _ in pairs:
                if ref_name in floor_out:
                    floor_stats[ref_name].update(floor_out[ref_name].astype(np.float64), ref_out[ref_name])
        count += 1

    noise_floor = _noise_floor_dict(floor_method, min(noise_floor_samples, count), floor_stats, stats)
    outputs: list[dict] = []
    for ref_name, tgt_name in pairs or []:
        limits = thresholds.for_output(ref_name)
        floor_abs = floor_stats[ref_name].max_abs if floor_stats[ref_name].finite else None
        verdict, reasons = verdict_for(stats[ref_name], limits, floor_abs)
        entry = {"name": ref_name, "target_name": tgt_name, **stats[ref_name].metrics()}
        entry["noise_floor_ratio"] = noise_floor["outputs"].get(ref_name, {}).get("target_over_floor")
        entry.update(verdict=verdict, reasons=reasons)
        outputs.append(entry)
    task = task_stats.result(thresholds.for_output(task_stats.output)) if task_stats else None
    if spec.task and task is None:
        task = {"type": spec.task.type, "verdict": None, "reasons": [f"no task metric for {spec.task.type} yet"]}

    layers: list[dict] = []
    first_divergence = None
    layer_summary = None
    if layerwise:
        from modelyard.migrate.model.layerwise import compare_layers

        report(0.5, "layer-wise comparison")
        lw = compare_layers(
            ref_runner, tgt_runner, feeds_iter, thresholds.base(),
            floor=floor_runner if floor_method == "fp64" else None,
            floor_samples=noise_floor_samples, replay_samples=replay_samples, dump_dir=dump_dir,
            progress=lambda f, m: report(0.5 + 0.45 * f, m),
        )
        layers, first_divergence, layer_summary = list(lw.layers), lw.first_divergence, lw.summary

    verdicts = [o["verdict"] for o in outputs] + ([task["verdict"]] if task and task.get("verdict") else [])
    reasons = [f"{o['name']}: {r}" for o in outputs for r in o["reasons"]]
    if task and task.get("verdict") and task["verdict"] != "pass":
        reasons += [f"task: {r}" for r in task.get("reasons", [])]
    report(1.0, "done")
    for runner in (ref_runner, tgt_runner, floor_runner):
        if runner is not None:
            runner.close()
    return CompareResult(
        reference=reference,
        target=target,
        reference_model=ref_artifact.describe(),
        target_model=tgt_artifact.describe(),
        samples=count,
        verdict=worst(verdicts),
        reasons=tuple(reasons),
        thresholds=thresholds.to_dict(),
        noise_floor=noise_floor,
        outputs=tuple(outputs),
        task=task,
        layers=tuple(layers),
        first_divergence=first_divergence,
        layerwise=layer_summary,
        backend_info={"reference": ref_runner.info, "target": tgt_runner.info},
        seconds=time.perf_counter() - started,
    )


def _noise_floor_dict(method: str, samples: int, floor_stats: dict[str, TensorStats], stats: dict[str, TensorStats]) -> dict:
    description = {
        "fp64": "reference vs the same model in float64 on CPU",
        "repeat": "reference vs a repeated run of itself",
        "off": "not measured",
    }[method]
    outputs = {}
    for name, fs in floor_stats.items():
        if not fs.finite:
            continue
        ratio = None
        if fs.rmse and stats[name].rmse is not None:
            ratio = stats[name].rmse / fs.rmse
        outputs[name] = {
            "max_abs_err": fs.max_abs,
            "rmse": fs.rmse,
            "cosine": fs.cosine,
            "target_over_floor": ratio if ratio is None or math.isfinite(ratio) else None,
        }
    return {"method": method, "description": description, "samples": samples if method != "off" else 0, "outputs": outputs}
