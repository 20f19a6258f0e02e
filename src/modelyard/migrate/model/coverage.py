"""Operator coverage: which operators of the exported graph a target runs natively and which fall back.

Targets:

* ``openvino[:cpu|gpu|npu]``: ``Core.query_model`` on the model converted from ONNX (ops the device plugin
  does not claim fall back); a frontend conversion failure names the unconvertible ops.
* ``onnxruntime:<ep>``: the execution provider each node is placed on, read from ONNX Runtime's own placement
  log for a session built with that provider (first) and the CPU provider (fallback).
* ``npu``: the maintained knowledge file ``knowledge/npu_ops.yaml`` (CANN AI Core / AI CPU / unsupported).
* ``torch[:cuda|npu|xpu|mps|cpu]``: which operators have a kernel in the ONNX-on-torch interpreter that
  ``torch:<device>`` runs ONNX graphs with (nothing falls back there: an op without a kernel means the graph
  cannot load).

Also reported: coverage % (native nodes / all nodes), the fallback ops with counts, and the dynamic shapes
(dynamic graph inputs/outputs, ops whose output shape depends on data, tensors shape inference cannot pin).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.errors import InvalidInput, Unavailable
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
    ``onnxruntime:cpu``, ``npu``...)."""
    artifact = _onnx_for(spec, model_path, cache_dir)
    name, _, device = target.partition(":")
    if name == "npu":
        return _npu(artifact)
    if name == "openvino":
        return _openvino(artifact, device or "cpu")
    if name == "onnxruntime":
        return _onnxruntime(artifact, device or "cpu")
    if name == "torch":
        return _torch(artifact, device or "cpu")
    raise InvalidInput(f"unknown coverage target {target!r}; use openvino[:cpu], onnxruntime:<ep>, torch[:<device>] "
                       "or npu")


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


def _openvino(artifact: Artifact, device: str) -> CoverageResult:
    from modelyard.runtime.registry import get_backend

    backend = get_backend(f"openvino:{device}")
    ok, why = backend.available()
    if not ok:
        raise Unavailable(f"cannot query openvino:{device}: {why}")
    import openvino as ov

    core = ov.Core()
    dynamic: dict = {}
    if artifact.format == "onnx":
        dynamic = dynamic_shapes(_load_graph(artifact))
    try:
        model = core.read_model(str(artifact.path))
    except RuntimeError as exc:
        message = str(exc)
        failed = sorted(set(re.findall(r"OpType:\s*([A-Za-z0-9_]+)", message))) or ["?"]
        ops = tuple({"op": op, "count": 1, "status": "unsupported", "runs_on": "none", "note": "frontend cannot convert"}
                    for op in failed)
        return CoverageResult(f"openvino:{device}", str(artifact.path), "OpenVINO ONNX frontend", ops, dynamic,
                              (message.splitlines()[0],))
    ov_device = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}[device]
    supported = core.query_model(model, ov_device)
    counts: Counter = Counter()
    native: Counter = Counter()
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind in ("Parameter", "Result", "Constant"):
            continue
        counts[kind] += 1
        if op.get_friendly_name() in supported:
            native[kind] += 1
    ops = []
    for kind, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if native[kind] == count:
            ops.append({"op": kind, "count": count, "status": "native", "runs_on": ov_device, "note": None})
        else:
            if native[kind]:
                ops.append({"op": kind, "count": native[kind], "status": "native", "runs_on": ov_device, "note": None})
            ops.append({"op": kind, "count": count - native[kind], "status": "fallback", "runs_on": "not claimed by "
                        + ov_device, "note": None})
    return CoverageResult(f"openvino:{device}", str(artifact.path), f"openvino Core.query_model({ov_device})",
                          tuple(ops), dynamic, ("op types are OpenVINO opset operations after conversion",))


_PLACED = re.compile(r"(All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")
_NODE_LINE = re.compile(r"^\s+(\S+) \((.*)\)\s*$")


def _onnxruntime(artifact: Artifact, device: str) -> CoverageResult:
    import onnxruntime as ort

    from modelyard.runtime.onnxruntime_backend import PROVIDERS
    from modelyard.runtime.registry import get_backend

    backend = get_backend(f"onnxruntime:{device}")
    ok, why = backend.available()
    if not ok:
        raise Unavailable(f"cannot query onnxruntime:{device}: {why}")
    model = _load_graph(artifact)
    provider = PROVIDERS[device]
    providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
    options = ort.SessionOptions()
    options.log_severity_level = 0
    options.log_verbosity_level = 0
    log = _capture_stderr(lambda: ort.InferenceSession(model.SerializeToString(), options, providers=providers))
    placement: dict[str, Counter] = {}
    current: str | None = None
    for line in log.splitlines():
        match = _PLACED.search(line)
        if match:
            current = match.group(2)
            placement.setdefault(current, Counter())
            if match.group(1) == "All nodes":
                # every node on one provider: the log lists none of them, so count the (optimised) graph's ops
                placement[current] = Counter(n.op_type for n in model.graph.node)
                current = None
            continue
        node = _NODE_LINE.match(line)
        if node and current:
            placement[current][node.group(1)] += 1
        elif current and line.strip() and not node:
            current = None
    if not placement:
        raise Unavailable("onnxruntime did not report node placement (its verbose log format changed)")
    ops = []
    for ep, counts in placement.items():
        for op, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            ops.append({"op": op, "count": count, "status": "native" if ep == provider else "fallback", "runs_on": ep,
                        "note": None})
    notes = ("placement after ONNX Runtime's graph optimisations (fused nodes count once)",)
    return CoverageResult(f"onnxruntime:{device}", str(artifact.path), "onnxruntime node placement", tuple(ops),
                          dynamic_shapes(model), notes)


def _torch(artifact: Artifact, device: str) -> CoverageResult:
    from modelyard.runtime.onnx_torch import supported_ops
    from modelyard.runtime.registry import get_backend

    backend = get_backend(f"torch:{device}")  # an unknown device is InvalidInput; an absent one is still answered
    model = _load_graph(artifact)
    kernels = set(supported_ops())
    counts = Counter((n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
                     for n in model.graph.node)
    ops = [{"op": op, "count": count, "status": "native" if op in kernels else "unsupported",
            "runs_on": backend.full_name if op in kernels else "none", "note": None}
           for op, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    notes = ["static: the interpreter's operator table; a few attribute combinations (asymmetric ConvTranspose "
             "pads, some Resize modes) are refused when the graph loads"]
    ok, why = backend.available()
    if not ok:
        notes.append(f"{backend.full_name} is not available here: {why}")
    return CoverageResult(backend.full_name, str(artifact.path), "ONNX-on-torch operator table", tuple(ops),
                          dynamic_shapes(model), tuple(notes))


def _capture_stderr(action) -> str:
    """Run ``action`` with file descriptor 2 redirected to a temp file (ORT logs from C++), return the text."""
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            action()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode("utf-8", errors="replace")
