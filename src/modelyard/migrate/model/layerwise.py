"""Layer-wise comparison: the first layer where the target drifts, and whether each drift is the layer's own.

1. Both runners expose layers named by torch module path (graph runners map ONNX tensors to modules through the
   exporter's name scopes). The layers both sides produce, with equal shapes, are compared in topological order.
2. Pass 1 streams every sample: reference and target intermediates (and, for the first samples, the float64
   reference's, the per-layer noise floor) are folded into running statistics and, when asked, written to disk
   one tensor at a time. Memory holds one sample's layers, never depth x samples.
3. Every layer whose verdict is not ``pass`` is *replayed*: the target runs that layer alone on the inputs the
   reference's layer received. If the replay still disagrees the error is ``local`` (the layer itself computes
   differently); if the replay agrees, the layer only ``accumulated`` error from upstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.migrate.model.metrics import TensorStats, Thresholds, verdict_for


@dataclass(frozen=True)
class LayerwiseResult:
    """Per-layer rows (``modelyard.compare/1`` ``layers``), the first divergence and a summary of the matching."""

    layers: tuple[dict, ...]
    first_divergence: dict | None
    summary: dict

    def to_dict(self) -> dict:
        return {"layers": list(self.layers), "first_divergence": self.first_divergence, "summary": self.summary}

    def __bool__(self) -> bool:
        return self.first_divergence is None


class _Dumper:
    """Writes ``<dir>/<side>/sample_0000/0007_<layer>.npy`` one tensor at a time, plus an ``index.json``."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root else None
        if self.root:
            self.root.mkdir(parents=True, exist_ok=True)

    def write(self, side: str, sample: int, index: int, name: str, value: np.ndarray) -> None:
        if self.root is None:
            return
        folder = self.root / side / f"sample_{sample:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.#-]+", "_", name)[:120]
        np.save(folder / f"{index:04d}_{safe}.npy", value)

    def index(self, rows: list[dict]) -> None:
        if self.root is None:
            return
        data = {"schema": "modelyard.dumps/1", "layers": [{k: r[k] for k in ("index", "name", "target_name")} for r in rows]}
        (self.root / "index.json").write_text(json.dumps(data, indent=1))


def compare_layers(
    reference,
    target,
    feeds_factory: Callable[[], Iterator[dict[str, np.ndarray]]],
    thresholds: Thresholds,
    *,
    floor=None,
    floor_samples: int = 2,
    replay_samples: int = 2,
    dump_dir: Path | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> LayerwiseResult:
    """Compare ``target`` against ``reference`` layer by layer (see the module docstring).

    Args:
        reference, target: Runners exposing layers (``Runner.layers`` / ``intermediates`` / ``replay``).
        feeds_factory: returns a fresh iterator over the same feeds each call.
        thresholds: the tensor thresholds every layer is judged by.
        floor: optional float64 copy of the reference; its first ``floor_samples`` samples give per-layer floors.
        replay_samples: samples on which divergent layers are replayed (default 2).
        dump_dir: stream tensors here; default none.
        progress: optional ``callable(fraction, message)``.
    """
    report = progress or (lambda fraction, message: None)
    candidates = [layer.name for layer in target.layers()]
    target_names = {layer.name: layer.target_name for layer in target.layers()}
    if not candidates:
        summary = {
            "compared": 0, "reference_only": 0, "target_only": 0,
            "note": f"{target.backend_name} exposes no layers (the graph carries no module scopes or layer map)",
        }
        return LayerwiseResult((), None, summary)
    dumper = _Dumper(dump_dir)
    order: list[str] | None = None
    stats: dict[str, TensorStats] = {}
    floor_stats: dict[str, TensorStats] = {}
    skipped_shape: list[str] = []
    samples = 0
    for sample, feeds in enumerate(feeds_factory()):
        report(0.8 * sample / max(1, sample + 1), f"layers, sample {sample + 1}")
        wanted = candidates if order is None else order
        ref_values = reference.intermediates(feeds, wanted)
        tgt_values = target.intermediates(feeds, wanted)
        if order is None:
            # reference order: torch hooks fire in execution order, graph runners follow graph order
            order = []
            for name in ref_values:
                if name not in tgt_values:
                    continue
                if np.shape(ref_values[name]) != np.shape(tgt_values[name]):
                    skipped_shape.append(name)
                    continue
                order.append(name)
            stats = {name: TensorStats(name, thresholds.rtol, thresholds.atol) for name in order}
            floor_stats = {name: TensorStats(name) for name in order}
            reference_only = len([n for n in ref_values if n not in tgt_values])
        floor_values = floor.intermediates(feeds, order) if floor is not None and sample < floor_samples else {}
        for index, name in enumerate(order):
            if name not in ref_values or name not in tgt_values:
                continue
            stats[name].update(ref_values[name], tgt_values[name])
            dumper.write("reference", sample, index, name, ref_values[name])
            dumper.write("target", sample, index, name, tgt_values[name])
            if name in floor_values:
                floor_stats[name].update(floor_values[name], ref_values[name])
        del ref_values, tgt_values, floor_values
        samples += 1

    order = order or []
    rows: list[dict] = []
    divergent: list[str] = []
    for index, name in enumerate(order):
        floor_abs = floor_stats[name].max_abs if floor_stats[name].finite else None
        verdict, reasons = verdict_for(stats[name], thresholds, floor_abs)
        metrics = stats[name].metrics()
        rows.append({
            "index": index,
            "name": name,
            "target_name": target_names.get(name, name),
            "shape": metrics["shape"],
            "max_abs_err": metrics["max_abs_err"],
            "mean_abs_err": metrics["mean_abs_err"],
            "cosine": metrics["cosine"],
            "sqnr_db": metrics["sqnr_db"],
            "nonfinite_mismatch": metrics["nonfinite_mismatch"],
            "noise_floor_max_abs_err": floor_abs,
            "local_max_abs_err": None,
            "local_cosine": None,
            "kind": None,
            "verdict": verdict,
            "reasons": reasons,
        })
        if verdict != "pass":
            divergent.append(name)

    report(0.85, f"replaying {len(divergent)} divergent layers")
    local = _replay(reference, target, feeds_factory, divergent, thresholds, replay_samples)
    for row in rows:
        if row["name"] not in divergent:
            continue
        local_stats = local.get(row["name"])
        if local_stats is not None and local_stats.finite:
            floor_abs = row["noise_floor_max_abs_err"]
            local_verdict, _ = verdict_for(local_stats, thresholds, floor_abs)
            row.update(
                local_max_abs_err=local_stats.max_abs,
                local_cosine=local_stats.cosine,
                kind="local" if local_verdict != "pass" else "accumulated",
                kind_method="replay",
            )
        else:
            # no replay possible: a layer whose every predecessor passed can only have erred itself
            earlier = [r for r in rows if r["index"] < row["index"]]
            row.update(
                kind="local" if all(r["verdict"] == "pass" for r in earlier) else "unknown",
                kind_method="inferred",
            )
    dumper.index(rows)
    first = next((r for r in rows if r["verdict"] != "pass"), None)
    first_divergence = None
    if first is not None:
        first_divergence = {
            "index": first["index"], "name": first["name"], "target_name": first["target_name"],
            "kind": first["kind"], "kind_method": first.get("kind_method"), "verdict": first["verdict"],
            "max_abs_err": first["max_abs_err"], "cosine": first["cosine"],
            "local_max_abs_err": first["local_max_abs_err"], "reasons": first["reasons"],
        }
    summary = {
        "compared": len(order),
        "samples": samples,
        "reference_only": reference_only if order else 0,
        "target_only": len([n for n in candidates if n not in set(order) and n not in skipped_shape]) if order else len(candidates),
        "shape_mismatch": skipped_shape,
        "divergent": len(divergent),
        "local": sum(1 for r in rows if r["kind"] == "local"),
        "accumulated": sum(1 for r in rows if r["kind"] == "accumulated"),
        "replay_samples": min(replay_samples, samples) if divergent else 0,
        "floor_samples": min(floor_samples, samples) if floor is not None else 0,
        "dump_dir": str(dump_dir) if dump_dir else None,
    }
    report(1.0, "layers done")
    return LayerwiseResult(tuple(rows), first_divergence, summary)


def _replay(reference, target, feeds_factory, names: list[str], thresholds: Thresholds, samples: int) -> dict[str, TensorStats]:
    """Run each named target layer on the reference's inputs for the first ``samples`` feeds."""
    if not names or samples < 1:
        return {}
    results: dict[str, TensorStats] = {}
    for sample, feeds in enumerate(feeds_factory()):
        if sample >= samples:
            break
        calls = reference.layer_calls(feeds, names)
        if not calls:
            break
        ref_values = reference.intermediates(feeds, list(calls))
        replayed = target.replay(feeds, calls)
        for name, value in replayed.items():
            if name in ref_values and np.shape(value) == np.shape(ref_values[name]):
                results.setdefault(name, TensorStats(name, thresholds.rtol, thresholds.atol)).update(ref_values[name], value)
    return results
