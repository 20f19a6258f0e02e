"""Layer-wise comparison: the first layer where the target drifts, and whether each drift is the layer's own.

1. Both runners expose layers named by torch module path (graph runners map ONNX tensors to modules through the
   exporter's name scopes). The layers both sides produce, with equal shapes, are compared in topological order.
2. Pass 1 streams every sample: reference and target intermediates (and, for the first samples, the float64
   reference's, the per-layer noise floor) are folded into running statistics and, when asked, written to disk
   one tensor at a time. Memory holds one sample's layers, never depth x samples.
3. Every layer whose verdict is not ``pass`` is *replayed*: the target runs that layer alone on the inputs the
   reference's layer received. If the replay still disagrees the error is ``local`` (the layer itself computes
   differently); if the replay agrees, the layer only ``accumulated`` error from upstream.

Collect, then judge: :func:`collect_layers` (pass 1) and :func:`collect_replays` (pass 2) fold tensors into the
:class:`~modelyard.migrate.model.accumulate.PairAccumulator` that output comparison uses too and return frozen values;
:func:`judge_layers` and :func:`classify_divergences` decide verdicts and kinds from those values alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelyard.migrate.model.accumulate import PairAccumulator, PairStats
from modelyard.migrate.model.metrics import Thresholds


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
        data = {
            "schema": "modelyard.dumps/1",
            "layers": [{k: r[k] for k in ("index", "name", "target_name")} for r in rows],
        }
        (self.root / "index.json").write_text(json.dumps(data, indent=1))


@dataclass(frozen=True)
class LayerSamples:
    """What pass 1 gathered: the layers compared (reference order), their statistics and floors, and what could
    not be matched."""

    order: tuple[str, ...]
    stats: PairStats
    samples: int
    reference_only: int
    shape_mismatch: tuple[str, ...]


def collect_layers(
    reference,
    target,
    feeds_factory: Callable[[], Iterator[dict[str, np.ndarray]]],
    candidates: list[str],
    thresholds: Thresholds,
    *,
    floor=None,
    floor_samples: int = 2,
    dumper: _Dumper | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> LayerSamples:
    """Pass 1: stream every sample's intermediates of the layers both sides produce (equal shapes) into
    statistics, and the float64 reference's for the first ``floor_samples`` samples."""
    report = progress or (lambda fraction, message: None)
    dumper = dumper or _Dumper(None)
    acc = PairAccumulator(lambda name: thresholds)
    order: list[str] | None = None
    skipped_shape: list[str] = []
    reference_only = 0
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
            reference_only = len([n for n in ref_values if n not in tgt_values])
        floor_values = floor.intermediates(feeds, order) if floor is not None and sample < floor_samples else {}
        for index, name in enumerate(order):
            if name not in ref_values or name not in tgt_values:
                continue
            acc.add(name, ref_values[name], tgt_values[name])
            dumper.write("reference", sample, index, name, ref_values[name])
            dumper.write("target", sample, index, name, tgt_values[name])
            if name in floor_values:
                acc.add_floor(name, floor_values[name], ref_values[name])
        del ref_values, tgt_values, floor_values
        samples += 1
    return LayerSamples(tuple(order or ()), acc.freeze(), samples, reference_only if order else 0,
                        tuple(skipped_shape))


def judge_layers(collected: LayerSamples, thresholds: Thresholds, target_names: dict[str, str]) -> list[dict]:
    """One row per compared layer with its metrics and verdict (the pass limit widened by its floor)."""
    rows: list[dict] = []
    for index, name in enumerate(collected.order):
        if name not in collected.stats.stats:  # a layer that never produced a value on both sides
            continue
        floor_abs = collected.stats.floor_abs(name)
        verdict, reasons = collected.stats.judge(name, thresholds)
        metrics = collected.stats.stats[name].metrics()
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
    return rows


def collect_replays(reference, target, feeds_factory, names: list[str], thresholds: Thresholds,
                    samples: int) -> PairStats:
    """Pass 2: run each named target layer on the reference's inputs for the first ``samples`` feeds."""
    acc = PairAccumulator(lambda name: thresholds)
    if not names or samples < 1:
        return acc.freeze()
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
                acc.add(name, ref_values[name], value)
    return acc.freeze()


def classify_divergences(rows: list[dict], local: PairStats, thresholds: Thresholds) -> list[dict]:
    """Each divergent row's kind: ``local`` when its replay on the reference's inputs still fails, ``accumulated``
    when the replay passes; without a replay, ``local`` only if every earlier layer passed."""
    classified: list[dict] = []
    for row in rows:
        row = dict(row)
        if row["verdict"] != "pass":
            local_stats = local.stats.get(row["name"])
            if local_stats is not None and local_stats.finite:
                local_verdict, _ = local.judge(row["name"], thresholds, row["noise_floor_max_abs_err"])
                row.update(local_max_abs_err=local_stats.max_abs, local_cosine=local_stats.cosine,
                           kind="local" if local_verdict != "pass" else "accumulated", kind_method="replay")
            else:
                # no replay possible: a layer whose every predecessor passed can only have erred itself
                earlier = [r for r in rows if r["index"] < row["index"]]
                row.update(kind="local" if all(r["verdict"] == "pass" for r in earlier) else "unknown",
                           kind_method="inferred")
        classified.append(row)
    return classified


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
    target_layers = target.layers()
    candidates = [layer.name for layer in target_layers]
    target_names = {layer.name: layer.target_name for layer in target_layers}
    if not candidates:
        summary = {
            "compared": 0, "reference_only": 0, "target_only": 0,
            "note": f"{target.backend_name} exposes no layers (the graph carries no module scopes or layer map)",
        }
        return LayerwiseResult((), None, summary)
    dumper = _Dumper(dump_dir)
    collected = collect_layers(reference, target, feeds_factory, candidates, thresholds, floor=floor,
                               floor_samples=floor_samples, dumper=dumper, progress=report)
    judged = judge_layers(collected, thresholds, target_names)
    divergent = [row["name"] for row in judged if row["verdict"] != "pass"]
    report(0.85, f"replaying {len(divergent)} divergent layers")
    local = collect_replays(reference, target, feeds_factory, divergent, thresholds, replay_samples)
    rows = classify_divergences(judged, local, thresholds)
    dumper.index(rows)
    report(1.0, "layers done")
    return LayerwiseResult(tuple(rows), _first_divergence(rows),
                           _summary(collected, candidates, rows, divergent, replay_samples, floor, floor_samples,
                                    dump_dir))


def _first_divergence(rows: list[dict]) -> dict | None:
    first = next((r for r in rows if r["verdict"] != "pass"), None)
    if first is None:
        return None
    return {
        "index": first["index"], "name": first["name"], "target_name": first["target_name"],
        "kind": first["kind"], "kind_method": first.get("kind_method"), "verdict": first["verdict"],
        "max_abs_err": first["max_abs_err"], "cosine": first["cosine"],
        "local_max_abs_err": first["local_max_abs_err"], "reasons": first["reasons"],
    }


def _summary(collected: LayerSamples, candidates: list[str], rows: list[dict], divergent: list[str],
             replay_samples: int, floor, floor_samples: int, dump_dir: Path | None) -> dict:
    order = set(collected.order)
    skipped = set(collected.shape_mismatch)
    return {
        "compared": len(collected.order),
        "samples": collected.samples,
        "reference_only": collected.reference_only,
        "target_only": (len([n for n in candidates if n not in order and n not in skipped]) if collected.order
                        else len(candidates)),
        "shape_mismatch": list(collected.shape_mismatch),
        "divergent": len(divergent),
        "local": sum(1 for r in rows if r["kind"] == "local"),
        "accumulated": sum(1 for r in rows if r["kind"] == "accumulated"),
        "replay_samples": min(replay_samples, collected.samples) if divergent else 0,
        "floor_samples": min(floor_samples, collected.samples) if floor is not None else 0,
        "dump_dir": str(dump_dir) if dump_dir else None,
    }
