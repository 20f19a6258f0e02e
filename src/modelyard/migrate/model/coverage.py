"""Operator coverage: which operators of the exported graph a target runs natively and which fall back.

Targets (each backend answers through its coverage hook, ``Backend.coverage``):

* ``openvino[:cpu|gpu|npu]``: ``Core.query_model`` on the model converted from ONNX (ops the device plugin
  does not claim fall back); a frontend conversion failure names the unconvertible ops.
* ``onnxruntime:<ep>``: the execution provider each node is placed on, read from ONNX Runtime's own placement
  log for a session built with that provider (first) and the CPU provider (fallback).
* ``npu``: the maintained knowledge file ``knowledge/npu_ops.yaml`` (CANN AI Core / AI CPU / unsupported).
* ``torch[:cuda|npu|xpu|mps|cpu]``: which operators have a kernel in the ONNX-on-torch interpreter that
  ``torch:<device>`` runs ONNX graphs with (nothing falls back there: an op without a kernel means the graph
  cannot load).
* a device (``cpu``, ``cuda``, ``gpu``): where :func:`modelyard.runtime.targets.coverage_target` asks.

Also reported: coverage % (native nodes / all nodes), the fallback ops with counts, and the dynamic shapes
(dynamic graph inputs/outputs, ops whose output shape depends on data, tensors shape inference cannot pin).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.runtime.spec import Artifact, ModelSpec

SCHEMA = "modelyard.coverage/1"
KNOWLEDGE = Path(__file__).with_name("knowledge") / "npu_ops.yaml"
_DATA_DEPENDENT = {"NonZero", "Unique", "NonMaxSuppression", "Compress", "TopK", "Range", "Loop", "If"}


@dataclass(frozen=True)
class CoverageResult:
    """Per op type: count, status (``native``/``fallback``/``unsupported``/``unknown``), where it runs."""

    target: str
    model: str
    method: str
    ops: tuple[dict, ...]
    dynamic: dict
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_nodes(self) -> int:
        return sum(op["count"] for op in self.ops)

    @property
    def native_nodes(self) -> int:
        return sum(op["count"] for op in self.ops if op["status"] == "native")

    @property
    def coverage(self) -> float:
        return self.native_nodes / self.total_nodes if self.total_nodes else 0.0

    def fallbacks(self) -> list[dict]:
        return [op for op in self.ops if op["status"] != "native"]

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "target": self.target,
            "model": self.model,
            "method": self.method,
            "total_nodes": self.total_nodes,
            "native_nodes": self.native_nodes,
            "coverage": round(self.coverage, 4),
            "ops": [dict(op) for op in self.ops],
            "fallback": [{"op": op["op"], "count": op["count"], "status": op["status"], "runs_on": op["runs_on"]}
                         for op in self.fallbacks()],
            "dynamic": self.dynamic,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        lines = [f"{self.target}: {self.coverage:.1%} of {self.total_nodes} nodes native ({self.method})"]
        for op in self.fallbacks():
            lines.append(f"  {op['status']}: {op['op']} x{op['count']} -> {op['runs_on']}")
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return not self.fallbacks()


def _onnx_for(spec: ModelSpec, model_path: str | Path | None, cache_dir: Path | None) -> Artifact | None:
    from modelyard.runtime.spec import artifact_from_path

    if model_path is not None:
        return artifact_from_path(model_path, spec)
    source = spec.source()
    if source.format in ("onnx", "openvino"):
        return source
    from modelyard.migrate.model.compare import default_cache_dir
    from modelyard.migrate.model.passes import convert

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    return convert(spec, "onnx", out_dir=cache / "exports" / spec.content_hash()[:16], cache_dir=cache).artifact


def dynamic_shapes(model) -> dict:
    """Dynamic graph inputs/outputs, data-dependent ops and tensors whose shape inference leaves dims unknown."""
    import onnx

    def dims(value_info) -> list:
        shape = value_info.type.tensor_type.shape
        return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]

    inputs = {i.name: dims(i) for i in model.graph.input if any(isinstance(d, str) for d in dims(i))}
    outputs = {o.name: dims(o) for o in model.graph.output if any(isinstance(d, str) for d in dims(o))}
    data_dependent = Counter(n.op_type for n in model.graph.node if n.op_type in _DATA_DEPENDENT)
    unknown = 0
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        for vi in inferred.graph.value_info:
            if any(d == "?" or (isinstance(d, str) and d.startswith("unk")) for d in dims(vi)):
                unknown += 1
    except Exception:  # noqa: BLE001 - shape inference is advisory here
        unknown = -1
    return {
        "inputs": inputs,
        "outputs": outputs,
        "data_dependent_ops": dict(data_dependent),
        "tensors_with_unknown_dims": unknown,
    }


def op_coverage(
    spec: ModelSpec,
    target: str,
    *,
    model_path: str | Path | None = None,
    cache_dir: Path | None = None,
) -> CoverageResult:
    """Coverage of ``spec``'s exported graph (or ``model_path``) on ``target`` (``openvino:cpu``,
    ``onnxruntime:cpu``, ``npu``, a device...)."""
    from modelyard.runtime.registry import BACKENDS, get_backend
    from modelyard.runtime.targets import DEVICES, coverage_target

    artifact = _onnx_for(spec, model_path, cache_dir)
    where = coverage_target(target) if target in DEVICES else target
    if where == "npu":
        return _npu(artifact)
    if where.partition(":")[0] not in BACKENDS:
        raise InvalidInput(f"unknown coverage target {target!r}; use openvino[:cpu], onnxruntime:<ep>, "
                           "torch[:<device>], npu or a device")
    found = get_backend(where).coverage(artifact)
    dynamic = dynamic_shapes(_load_graph(artifact)) if artifact.format == "onnx" else {}
    return CoverageResult(found.target, str(artifact.path), found.method, found.ops, dynamic, found.notes)


def _load_graph(artifact: Artifact):
    from modelyard.runtime.onnx_graph import load_onnx

    if artifact.format != "onnx":
        raise InvalidInput(f"this coverage target needs an ONNX model, got {artifact.format}")
    return load_onnx(artifact.path)


def _npu(artifact: Artifact) -> CoverageResult:
    import yaml

    knowledge = yaml.safe_load(KNOWLEDGE.read_text(encoding="utf-8"))
    table = knowledge["onnx"]
    status_of = {op: "native" for op in table["native"]}
    status_of.update({op: "aicpu" for op in table["aicpu"]})
    status_of.update({op: "unsupported" for op in table["unsupported"]})
    notes = table.get("notes", {})
    model = _load_graph(artifact)
    counts = Counter(n.op_type for n in model.graph.node)
    ops = []
    for op, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        status = status_of.get(op, "unknown")
        ops.append({
            "op": op,
            "count": count,
            "status": {"aicpu": "fallback"}.get(status, status),
            "runs_on": {"native": "AI Core", "aicpu": "AI CPU", "unsupported": "none", "unknown": "unknown"}[status],
            "note": notes.get(op),
        })
    return CoverageResult(
        "npu", str(artifact.path), f"knowledge file npu_ops.yaml (CANN {knowledge.get('cann_versions')})",
        tuple(ops), dynamic_shapes(model),
        ("static knowledge, not a device query: confirm on hardware with atc / msit analyze",),
    )
