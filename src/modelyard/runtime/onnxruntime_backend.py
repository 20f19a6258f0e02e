"""ONNX Runtime backend: ``onnxruntime:cpu`` always; ``cuda``, ``tensorrt``, ``cann``, ``openvino``, ``dml``,
``coreml`` and ``qnn`` execution providers when the installed onnxruntime build has them.

Intermediate tensors are exposed by adding them as graph outputs (a second session, built once per set of
names); a layer is replayed by extracting it as a submodel and running that alone. Operators are profiled with
ONNX Runtime's own profiler (a profiling session of the same options); coverage is read from its node-placement log.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import PositiveInt

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.runtime.backend import (
    Backend,
    BackendOptions,
    OperatorCoverage,
    OperatorTimes,
    Runner,
    TensorInfo,
)
from modelyard.runtime.onnx_graph import (
    GraphLayerHooks,
    GraphLayers,
    graph_precision,
    load_onnx,
    onnx_dtype_name,
    with_outputs,
)

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "cann": "CANNExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "qnn": "QNNExecutionProvider",
}
_PACKAGES = {
    "cuda": "onnxruntime-gpu",
    "tensorrt": "onnxruntime-gpu with TensorRT",
    "cann": "onnxruntime-cann",
    "openvino": "onnxruntime-openvino",
    "dml": "onnxruntime-directml",
    "qnn": "onnxruntime-qnn",
    "coreml": "onnxruntime on macOS",
}


_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "all": "ORT_ENABLE_ALL"}
_MODES = {"sequential": "ORT_SEQUENTIAL", "parallel": "ORT_PARALLEL"}


class OnnxRuntimeOptions(BackendOptions):
    """Args (``None``: ONNX Runtime's default):
    depth: layer granularity for layer-wise comparison (module paths truncated at this many components).
    threads: intra-op threads.
    inter_op_threads: inter-op threads (used with ``execution_mode=parallel``).
    graph_optimization: ``disable``, ``basic``, ``extended`` or ``all`` (ORT's default).
    execution_mode: ``sequential`` (ORT's default) or ``parallel``.
    spinning: whether idle intra-op threads spin waiting for work (ORT's default: yes). ``False`` for a model that
        shares the cores with other work (an edge skill beside its video decoders): spinning threads burn CPU
        between inferences that the neighbours need.
    """

    depth: PositiveInt | None = None
    threads: PositiveInt | None = None
    inter_op_threads: PositiveInt | None = None
    graph_optimization: Literal["disable", "basic", "extended", "all"] | None = None
    execution_mode: Literal["sequential", "parallel"] | None = None
    spinning: bool | None = None


def session_options(options: OnnxRuntimeOptions | None = None, profile_prefix: str | None = None):
    """ORT ``SessionOptions`` for ``options`` (quiet: errors only), profiling into ``profile_prefix`` when given."""
    import onnxruntime as ort

    opts = options or OnnxRuntimeOptions()
    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    if opts.threads:
        so.intra_op_num_threads = opts.threads
    if opts.inter_op_threads:
        so.inter_op_num_threads = opts.inter_op_threads
    if opts.graph_optimization:
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[opts.graph_optimization])
    if opts.execution_mode:
        so.execution_mode = getattr(ort.ExecutionMode, _MODES[opts.execution_mode])
    if opts.spinning is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if opts.spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if opts.spinning else "0")
    if profile_prefix is not None:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


class OnnxRuntimeRunner(GraphLayerHooks, Runner):
    """An ONNX model in an ORT session. ``info`` records the providers actually used and the graph precision."""

    concurrent = True  # an InferenceSession may run from several threads at once

    def __init__(self, model, path, provider: str, options: OnnxRuntimeOptions):
        import onnxruntime as ort

        self.model = model
        self.provider = provider
        self.providers = providers_for(provider)
        self.session_opts = options
        self.session = self._session(model)
        inputs = [
            TensorInfo(
                i.name, tuple(d if isinstance(d, int) else (d or None) for d in i.shape), onnx_dtype_name(i.type)
            )
            for i in self.session.get_inputs()
        ]
        outputs = [o.name for o in self.session.get_outputs()]
        info = {
            "onnxruntime": ort.__version__,
            "providers": self.session.get_providers(),
            "precision": graph_precision(model),
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        }
        tuned = options.given()
        tuned.pop("threads", None)
        tuned.pop("depth", None)
        if tuned:
            info["session_options"] = tuned
        super().__init__(inputs, outputs, info)
        self.graph = GraphLayers(model, path, options.depth)
        self._probe_sessions: dict[tuple[str, ...], object] = {}
        self._replay_sessions: dict[str, object] = {}

    def _session(self, model, profile_prefix: str | None = None):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(
                model.SerializeToString(), sess_options=session_options(self.session_opts, profile_prefix),
                providers=self.providers,
            )
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad graphs
            raise InvalidInput(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}") from None

    def _run(self, session, feeds: dict[str, np.ndarray], names: list[str] | None = None) -> dict[str, np.ndarray]:
        try:
            values = session.run(names, feeds)
        except Exception as exc:  # noqa: BLE001 - shape and type errors surface as ORT exceptions
            raise InvalidInput(f"{self.backend_name}: inference failed: {str(exc).splitlines()[0]}") from None
        out_names = names or [o.name for o in session.get_outputs()]
        return dict(zip(out_names, values, strict=True))

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._run(self.session, feeds)

    def _probe(self, feeds: dict[str, np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
        key = tuple(sorted(set(tensors)))
        if not key:
            return {}
        session = self._probe_sessions.get(key)
        if session is None:
            # NOTE: one cached session per name set; layer-wise compare asks for the same set every sample
            session = self._session(with_outputs(self.model, list(key)))
            self._probe_sessions = {key: session}
        return self._run(session, feeds, list(key))

    def _run_layer(self, name: str, submodel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._replay_sessions.get(name)
        if session is None:
            session = self._replay_sessions[name] = self._session(submodel)
        return self._run(session, feeds)

    def _profile_impl(self, feeds: dict[str, np.ndarray], iterations: int) -> OperatorTimes:
        with tempfile.TemporaryDirectory(prefix="modelyard-profile-") as tmp:
            # NOTE: ORT profiles a session from its creation; a second session keeps the serving one unprofiled
            session = self._session(self.model, profile_prefix=str(Path(tmp) / "ort_profile"))
            for _ in range(iterations + 1):
                self._run(session, feeds)
            trace = json.loads(Path(session.end_profiling()).read_text())
        runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace
                      if e.get("cat") == "Session" and e.get("name") == "model_run")
        warm_end = runs[0][1] if runs else -1  # the first run warms up and is not counted
        durations: dict[str, list[float]] = {}
        nodes: dict[str, tuple[str, float]] = {}
        for event in trace:
            if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
                continue
            if event["ts"] <= warm_end:
                continue
            op = event.get("args", {}).get("op_name", "?")
            node = event["name"].removesuffix("_kernel_time")
            durations.setdefault(op, []).append(float(event["dur"]))
            nodes[node] = (op, nodes.get(node, (op, 0.0))[1] + float(event["dur"]))
        return OperatorTimes("onnxruntime profiler", durations, nodes)

    def _close_impl(self) -> None:
        self.session = None
        self._probe_sessions = {}
        self._replay_sessions = {}


def providers_for(provider: str) -> list[str]:
    """The provider, then the CPU provider as ORT's fallback for the nodes it does not claim."""
    return [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])


class OnnxRuntimeBackend(Backend):
    """``onnxruntime:<ep>``. Load options: :class:`OnnxRuntimeOptions`."""

    name = "onnxruntime"
    devices = tuple(PROVIDERS)
    formats = ("onnx",)
    requires = "onnxruntime"
    options_model = OnnxRuntimeOptions

    def _available_impl(self) -> tuple[bool, str]:
        import onnxruntime as ort

        provider = PROVIDERS[self.device]
        if provider in ort.get_available_providers():
            return True, ""
        package = _PACKAGES.get(self.device, "an onnxruntime build with it")
        return False, f"onnxruntime {ort.__version__} has no {provider} (needs {package})"

    def _load_impl(self, artifact, options: OnnxRuntimeOptions) -> Runner:
        model = load_onnx(artifact.path)
        return OnnxRuntimeRunner(model, artifact.path, PROVIDERS[self.device], options)

    def _coverage_impl(self, artifact) -> OperatorCoverage:
        """The execution provider each node is placed on, read from ORT's own placement log for a session built
        with this provider (first) and the CPU provider (fallback)."""
        import onnxruntime as ort

        self.require_available("query")
        model = load_onnx(artifact.path)
        provider = PROVIDERS[self.device]
        options = ort.SessionOptions()
        options.log_severity_level = 0
        options.log_verbosity_level = 0
        log = _capture_stderr(lambda: ort.InferenceSession(model.SerializeToString(), options,
                                                           providers=providers_for(provider)))
        placement = _placement(log, model)
        if not placement:
            raise Unavailable("onnxruntime did not report node placement (its verbose log format changed)")
        ops = []
        for ep, counts in placement.items():
            for op, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                ops.append({"op": op, "count": count, "status": "native" if ep == provider else "fallback",
                            "runs_on": ep, "note": None})
        return OperatorCoverage(self.full_name, "onnxruntime node placement", tuple(ops),
                                ("placement after ONNX Runtime's graph optimisations (fused nodes count once)",))


_PLACED = re.compile(r"(All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")
_NODE_LINE = re.compile(r"^\s+(\S+) \((.*)\)\s*$")


def _placement(log: str, model) -> dict[str, Counter]:
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
    return placement


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
