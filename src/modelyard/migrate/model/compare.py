"""Precision comparison: run a reference and a target on the same feeds and return a frozen CompareResult.

Per output: max abs/rel err, mean abs err, RMSE, cosine, SQNR, ‰/1 % error ratios, nan/inf mismatches, allclose
(torch.testing's rtol/atol for the precision class) and a pass/warn/fail verdict (see ``metrics``). With a
``task`` in the spec: top-1/top-k agreement, prediction relative error or embedding cosine. The *noise floor* is the
reference against itself in float64 (torch references) or a repeated run (others); each output's error is
reported as a multiple of it and the pass limit on max abs err widens to ``noise_floor_factor`` x the floor.

Collect, then judge: :func:`collect_outputs` runs the runners and folds every sample into a
:class:`~modelyard.migrate.model.accumulate.PairAccumulator`, returning a frozen :class:`OutputSamples`;
:func:`judge_outputs` turns that value into per-output verdicts, the task verdict and the noise floor. Runners are
context managers, closed on every path (a compare that raises midway leaks no session).

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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.accumulate import PairAccumulator, PairStats
from modelyard.migrate.model.metrics import TaskStats, ThresholdSet, worst
from modelyard.migrate.model.specs import CompareSpec
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
        lines = [f"{self.verdict.upper()}: {self.target} ({self.target_model}) vs {self.reference} "
                 f"on {self.samples} samples"]
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
    if "box_agreement" in task:
        return (f"box agreement {task['box_agreement']:.3f} ({task['matched_boxes']} matched of "
                f"{task['reference_boxes']}/{task['target_boxes']} boxes)")
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


def _floor_backend(reference: str, ref_artifact: Artifact) -> str | None:
    """Where the float64 copy of the reference runs (its backend on the CPU), or ``None`` when the reference's
    backend cannot compute this artifact in float64 (then the floor is a repeated run)."""
    from modelyard.runtime.registry import get_backend

    floor = get_backend(f"{get_backend(reference).name}:cpu")
    if ref_artifact.format != "torch" or "dtype" not in floor.options_model.model_fields:
        return None  # a graph runs in the types it declares; only a model built from code can be rebuilt in fp64
    try:
        floor.check_options(dtype="float64")
    except InvalidInput:
        return None
    return floor.full_name


@dataclass(frozen=True)
class OutputSamples:
    """What :func:`collect_outputs` gathered: the output pairing, their statistics (with noise floors), the task
    statistics and how many samples and floor samples ran."""

    pairs: tuple[tuple[str, str], ...]
    stats: PairStats
    task: TaskStats | None
    samples: int
    floor_method: str
    floor_samples: int


def collect_outputs(
    spec: ModelSpec,
    reference,
    target,
    feeds_factory: Callable[[], Iterator[dict[str, np.ndarray]]],
    thresholds: ThresholdSet,
    *,
    floor=None,
    floor_method: str = "off",
    floor_samples: int = 0,
    progress: Callable[[int, str], None] | None = None,
) -> OutputSamples:
    """Run ``reference`` and ``target`` on every feed and fold the outputs into statistics.

    Args:
        floor: the float64 reference runner (``floor_method="fp64"``); with ``"repeat"`` the reference runs twice.
        floor_samples: samples that also run the floor.
        progress: optional ``callable(sample_index, message)``, called before each sample.
    """
    report = progress or (lambda index, message: None)
    acc = PairAccumulator(thresholds.for_output)
    pairs: list[tuple[str, str]] | None = None
    task_stats: TaskStats | None = None
    count = 0
    for index, feeds in enumerate(feeds_factory()):
        report(index, f"sample {index + 1}")
        ref_out = reference.infer(feeds)
        tgt_out = target.infer(feeds)
        if pairs is None:
            pairs = _align_outputs(ref_out, tgt_out)
            task_stats = _task_stats(spec, ref_out, pairs)
        for ref_name, tgt_name in pairs:
            acc.add(ref_name, ref_out[ref_name], tgt_out[tgt_name])
        if task_stats is not None:
            task_stats.observe(ref_out, {ref_name: tgt_out[tgt_name] for ref_name, tgt_name in pairs})
        if index < floor_samples and floor_method != "off":
            floor_out = (floor or reference).infer(feeds)
            for ref_name, _ in pairs:
                if ref_name in floor_out:
                    acc.add_floor(ref_name, floor_out[ref_name], ref_out[ref_name])
        count += 1
    return OutputSamples(tuple(pairs or ()), acc.freeze(), task_stats, count, floor_method,
                         min(floor_samples, count) if floor_method != "off" else 0)


def _task_stats(spec: ModelSpec, ref_out: dict, pairs: list[tuple[str, str]]) -> TaskStats | None:
    if spec.task and spec.task.type == "detection":
        from modelyard.migrate.model.detection_agreement import DetectionStats

        task = spec.task.model_dump(mode="json")
        post = task.get("postprocess") or {}
        return DetectionStats(task, (post.get("output") if post.get("kind") == "yolov8" else post.get("boxes"))
                              or pairs[0][0])
    if not (spec.task and spec.task.type in ("classification", "regression", "embedding")):
        return None
    task_output = spec.task.output or pairs[0][0]
    if task_output not in ref_out:
        raise InvalidInput(f"spec.task.output {task_output!r} is not an output ({list(ref_out)})")
    return TaskStats(spec.task.type, task_output, spec.task.top_k)


@dataclass(frozen=True)
class OutputVerdicts:
    """What :func:`judge_outputs` decided: per-output rows, the task verdict, the noise floor, the overall verdict
    and its reasons."""

    outputs: tuple[dict, ...]
    task: dict | None
    noise_floor: dict
    verdict: str
    reasons: tuple[str, ...]


def judge_outputs(collected: OutputSamples, thresholds: ThresholdSet, spec: ModelSpec) -> OutputVerdicts:
    """Per-output verdicts (the pass limit widened by the noise floor), the task verdict, and the worst of them."""
    stats = collected.stats
    noise_floor = _noise_floor_dict(collected.floor_method, collected.floor_samples, stats)
    outputs: list[dict] = []
    for ref_name, tgt_name in collected.pairs:
        verdict, reasons = stats.judge(ref_name, thresholds.for_output(ref_name))
        entry = {"name": ref_name, "target_name": tgt_name, **stats.stats[ref_name].metrics()}
        entry["noise_floor_ratio"] = noise_floor["outputs"].get(ref_name, {}).get("target_over_floor")
        entry.update(verdict=verdict, reasons=reasons)
        outputs.append(entry)
    task_stats = collected.task
    task = task_stats.result(thresholds.for_output(task_stats.output)) if task_stats else None
    if spec.task and task is None:
        task = {"type": spec.task.type, "verdict": None, "reasons": [f"no task metric for {spec.task.type} yet"]}
    verdicts = [o["verdict"] for o in outputs] + ([task["verdict"]] if task and task.get("verdict") else [])
    reasons = [f"{o['name']}: {r}" for o in outputs for r in o["reasons"]]
    if task and task.get("verdict") and task["verdict"] != "pass":
        reasons += [f"task: {r}" for r in task.get("reasons", [])]
    return OutputVerdicts(tuple(outputs), task, noise_floor, worst(verdicts), tuple(reasons))


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
    from modelyard.core.errors import Unavailable
    from modelyard.runtime.feeds import iter_feeds
    from modelyard.runtime.registry import get_backend

    started = time.perf_counter()
    if samples < 1:
        raise InvalidInput(f"samples must be at least 1, got {samples}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    work_dir = Path(work_dir) if work_dir else cache_dir / "exports" / spec.content_hash()[:16]
    report = progress or (lambda fraction, message: None)

    report(0.0, "loading models")
    for name in (reference, target):  # before any export: an unavailable backend should fail fast
        ok, why = get_backend(name).available()
        if not ok:
            raise Unavailable(f"backend {name} is not available: {why}")
    ref_artifact = resolve_artifact(spec, reference, None, cache_dir, work_dir)
    tgt_artifact = resolve_artifact(spec, target, target_model, cache_dir, work_dir)

    def feeds_factory() -> Iterator[dict[str, np.ndarray]]:
        return iter_feeds(spec, samples, data, seed)

    layer_result = None
    with ExitStack() as runners:  # every runner closed on every path, also when a sample or a layer raises
        ref_runner = runners.enter_context(get_backend(reference).load(ref_artifact))
        depth = {"depth": layer_depth} if layer_depth is not None and tgt_artifact.format != "torch" else {}
        tgt_runner = runners.enter_context(get_backend(target).load(tgt_artifact, depth))
        if thresholds is None:
            precision = tgt_runner.info.get("precision")
            thresholds = ThresholdSet(preset=precision if precision in ("fp32", "fp16", "bf16", "int8") else "fp32")
        floor_runner, floor_method = None, "off"
        if noise_floor_samples > 0:
            floor_name = _floor_backend(reference, ref_artifact)
            floor_method = "fp64" if floor_name else "repeat"
            if floor_name:
                floor_runner = runners.enter_context(get_backend(floor_name).load(ref_artifact, dtype="float64"))
        collected = collect_outputs(
            spec, ref_runner, tgt_runner, feeds_factory, thresholds, floor=floor_runner, floor_method=floor_method,
            floor_samples=noise_floor_samples, progress=lambda index, m: report(0.05 + 0.45 * index / samples, m),
        )
        if layerwise:
            from modelyard.migrate.model.layerwise import compare_layers

            report(0.5, "layer-wise comparison")
            layer_result = compare_layers(
                ref_runner, tgt_runner, feeds_factory, thresholds.base(), floor=floor_runner,
                floor_samples=noise_floor_samples, replay_samples=replay_samples, dump_dir=dump_dir,
                progress=lambda f, m: report(0.5 + 0.45 * f, m),
            )
        backend_info = {"reference": ref_runner.info, "target": tgt_runner.info}

    judged = judge_outputs(collected, thresholds, spec)
    report(1.0, "done")
    return CompareResult(
        reference=reference,
        target=target,
        reference_model=ref_artifact.describe(),
        target_model=tgt_artifact.describe(),
        samples=collected.samples,
        verdict=judged.verdict,
        reasons=judged.reasons,
        thresholds=thresholds.to_dict(),
        noise_floor=judged.noise_floor,
        outputs=judged.outputs,
        task=judged.task,
        layers=layer_result.layers if layer_result is not None else (),
        first_divergence=layer_result.first_divergence if layer_result is not None else None,
        layerwise=layer_result.summary if layer_result is not None else None,
        backend_info=backend_info,
        seconds=time.perf_counter() - started,
    )


def _noise_floor_dict(method: str, samples: int, collected: PairStats) -> dict:
    description = {
        "fp64": "reference vs the same model in float64 on CPU",
        "repeat": "reference vs a repeated run of itself",
        "off": "not measured",
    }[method]
    outputs = {}
    for name, fs in collected.floors.items():
        if not fs.finite:
            continue
        ratio = None
        if fs.rmse and collected.stats[name].rmse is not None:
            ratio = collected.stats[name].rmse / fs.rmse
        outputs[name] = {
            "max_abs_err": fs.max_abs,
            "rmse": fs.rmse,
            "cosine": fs.cosine,
            "target_over_floor": ratio if ratio is None or math.isfinite(ratio) else None,
        }
    return {"method": method, "description": description, "samples": samples if method != "off" else 0,
            "outputs": outputs}


def compare(
    spec: ModelSpec,
    options: CompareSpec,
    *,
    dump_dir: Path | None = None,
    cache_dir: Path | None = None,
    work_dir: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> CompareResult:
    """Compare as ``options`` (``CompareSpec``, the one declaration the CLI, job kind and pipeline share) say;
    ``dump_dir``, ``cache_dir``, ``work_dir`` and ``progress`` are where and how, as in ``compare_models``."""
    return compare_models(
        spec, options.reference, options.target, target_model=options.target_model, samples=options.samples,
        data=options.data, seed=options.seed, thresholds=options.threshold_set(), layerwise=options.layerwise,
        layer_depth=options.layer_depth, dump_dir=dump_dir, cache_dir=cache_dir, work_dir=work_dir, progress=progress,
    )
