"""The optimiser's accuracy gate and blame: the compare engine's metrics on cached reference outputs.

``ReferenceOutputs`` runs the reference (torch eager fp32, as the customer runs the model today) once over the gate
samples and keeps its outputs, so each candidate costs only its own inferences. ``gate`` folds every output into
the compare engine's ``TensorStats`` / ``TaskStats`` and judges the candidate:

* with a task: the task metric may drop by at most ``max_accuracy_drop`` (classification: 1 - top-1 agreement;
  regression: relative error; embedding: 1 - mean cosine), and no output may *fail* its tensor thresholds
  (the preset of the candidate's precision: nan/inf mismatches, cosine < 0.9...);
* without a task: the worst output cosine may drop by at most ``max_accuracy_drop`` and none may fail.

``blame_layers`` runs the full compare engine layer-wise on a failing INT8 model and ranks layers by their *own*
error (the replay of each divergent layer on the reference's inputs), largest first: the layers NNCF's accuracy
control would revert to float.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.migrate.model.metrics import TaskStats, TensorStats, ThresholdSet, verdict_for, worst
from modelyard.runtime.spec import ModelSpec


@dataclass
class ReferenceOutputs:
    """The reference's outputs on the gate feeds (kept in memory: ``samples`` x outputs)."""

    backend: str
    feeds: list[dict[str, np.ndarray]]
    outputs: list[dict[str, np.ndarray]]
    seconds: float

    @classmethod
    def collect(
        cls, spec: ModelSpec, backend: str, artifact, samples: int, data=None, seed: int = 0
    ) -> ReferenceOutputs:
        import time

        from modelyard.runtime.feeds import iter_feeds
        from modelyard.runtime.registry import get_backend

        started = time.perf_counter()
        feeds = list(iter_feeds(spec, samples, data, seed))
        with get_backend(backend).load(artifact) as runner:
            outputs = [runner.infer(f) for f in feeds]
        return cls(backend, feeds, outputs, time.perf_counter() - started)


def task_value(task: dict | None) -> tuple[str, float] | None:
    """``(metric name, value where higher is better)`` of a compare ``task`` dict."""
    if not task:
        return None
    if "top1_agreement" in task:
        return "top1_agreement", float(task["top1_agreement"])
    if task.get("relative_error") is not None:
        return "relative_error", float(task["relative_error"])
    if "mean_cosine" in task:
        return "mean_cosine", float(task["mean_cosine"])
    return None


def gate(spec: ModelSpec, reference: ReferenceOutputs, runner, numeric_class: str, max_accuracy_drop: float,
         limit: int | None = None) -> dict:
    """Judge ``runner`` against the reference outputs (the first ``limit`` samples when given).

    Returns:
        ``{"accepted", "reason", "metric", "value", "drop", "verdict", "cosine", "max_abs_err", "sqnr_db",
        "top1_agreement"?, "samples", "preset"}``.
    """
    preset = numeric_class if numeric_class in ("fp32", "fp16", "bf16", "int8") else "fp32"
    thresholds = ThresholdSet(preset=preset)
    wanted = {i.name for i in runner.inputs}
    stats: dict[str, TensorStats] = {}
    task_stats: TaskStats | None = None
    pairs: list[tuple[str, str]] | None = None
    count = len(reference.feeds) if limit is None else min(limit, len(reference.feeds))
    for feeds, ref_out in zip(reference.feeds[:count], reference.outputs[:count], strict=True):
        out = runner.infer({k: v for k, v in feeds.items() if k in wanted})
        if pairs is None:
            pairs = list(zip(ref_out, out, strict=False)) if set(ref_out) != set(out) else [(n, n) for n in ref_out]
            for name, _ in pairs:
                limits = thresholds.for_output(name)
                stats[name] = TensorStats(name, limits.rtol, limits.atol)
            if spec.task and spec.task.type in ("classification", "regression", "embedding"):
                task_stats = TaskStats(spec.task.type, spec.task.output or pairs[0][0], spec.task.top_k)
        for ref_name, tgt_name in pairs:
            stats[ref_name].update(ref_out[ref_name], out[tgt_name])
        if task_stats is not None:
            task_stats.update(ref_out[task_stats.output], out[dict(pairs)[task_stats.output]])
    verdicts, reasons = [], []
    for name, s in stats.items():
        verdict, why = verdict_for(s, thresholds.for_output(name))
        verdicts.append(verdict)
        reasons += [f"{name}: {r}" for r in why if verdict == "fail"]
    cosines = [s.cosine for s in stats.values() if s.cosine is not None]
    metrics = {name: s.metrics() for name, s in stats.items()}
    result: dict = {
        "samples": count,
        "preset": preset,
        "verdict": worst(verdicts),
        "cosine": min(cosines) if cosines else None,
        "max_abs_err": max((m["max_abs_err"] or 0.0) for m in metrics.values()) if metrics else None,
        "sqnr_db": min((m["sqnr_db"] for m in metrics.values() if m["sqnr_db"] is not None), default=None),
        "failures": reasons,
    }
    task = task_stats.result(thresholds.for_output(task_stats.output)) if task_stats else None
    if task and task.get("verdict") is not None and task_value(task):
        metric, value = task_value(task)
        drop = value if metric == "relative_error" else 1.0 - value
        result.update(metric=metric, value=value, drop=drop)
        if "top1_agreement" in task:
            result["topk_agreement"] = task["topk_agreement"]
    else:
        value = result["cosine"] if result["cosine"] is not None else 0.0
        result.update(metric="cosine", value=value, drop=1.0 - value)
    result["accepted"], result["reason"] = judge(result, max_accuracy_drop)
    return result


def judge(accuracy: dict, max_accuracy_drop: float) -> tuple[bool, str]:
    """``(accepted, reason)`` of a gate result under an accuracy-drop limit."""
    problems = list(accuracy.get("failures", []))
    if accuracy["drop"] > max_accuracy_drop + 1e-12:
        problems.insert(0, f"{accuracy['metric']} {accuracy['value']:.4f} loses {accuracy['drop']:.2%} "
                           f"(> allowed {max_accuracy_drop:.2%})")
    if problems:
        return False, "; ".join(problems)
    return (
        True,
        f"{accuracy['metric']} {accuracy['value']:.4f} (drop {accuracy['drop']:.2%} <= {max_accuracy_drop:.2%})",
    )


def blame_layers(spec: ModelSpec, reference: str, int8_onnx: Path, samples: int = 4, cache_dir: Path | None = None,
                 work_dir: Path | None = None) -> list[dict]:
    """Layers of an INT8 ONNX model ranked by their own error against ``reference`` (largest first).

    Each entry: ``{"name", "score", "kind", "cosine", "local_cosine"}``. The score is ``1 - local cosine`` from
    the replay when the layer could be replayed, else the cosine the layer lost relative to its predecessor.
    """
    from modelyard.migrate.model.compare import compare_models

    # NOTE: a near-zero pass margin makes every layer that loses anything "divergent", so each is replayed and
    # its own error measured; INT8's default preset would let layers at cosine 0.98 pass unexamined
    strict = ThresholdSet(preset="int8", default={"pass_cosine": 0.99999})
    def run(replay: int):
        return compare_models(
            spec, reference, "onnxruntime:cpu", target_model=int8_onnx, samples=samples, noise_floor_samples=0,
            thresholds=strict, layerwise=True, replay_samples=replay, cache_dir=cache_dir, work_dir=work_dir,
        )

    try:
        result = run(min(2, samples))
    except (ValueError, KeyError, RuntimeError):
        # NOTE: cutting one layer out of a QDQ graph can fail (a dequantized weight's value info is missing);
        # then blame by the cosine each layer loses over its predecessor, without replay
        result = run(0)
    ranked: list[dict] = []
    previous_loss = 0.0
    for row in result.layers:
        loss = 1.0 - row["cosine"] if row["cosine"] is not None else 0.0
        score = 1.0 - row["local_cosine"] if row.get("local_cosine") is not None else max(0.0, loss - previous_loss)
        previous_loss = loss
        if row["verdict"] != "pass" and score > 0:
            ranked.append({"name": row["name"], "score": score, "kind": row["kind"], "cosine": row["cosine"],
                           "local_cosine": row.get("local_cosine")})
    ranked.sort(key=lambda r: -r["score"])
    return ranked
