"""OpenVINO backend: ``openvino:cpu`` (and ``gpu``/``npu`` when the runtime sees them). Runs an IR (``.xml`` +
``.bin``) or an ONNX file directly.

NOTE: OpenVINO's CPU plugin silently computes in bf16 on CPUs with AMX/AVX512-BF16; a comparison that does not
pin the precision measures the wrong thing. The hint is always set explicitly (``f32`` unless asked otherwise) and
both the requested and the compiled value are recorded in ``runner.info``.

Operators are profiled with OpenVINO's performance counters (a copy compiled with ``PERF_COUNT``); coverage is
``Core.query_model`` (ops the device plugin does not claim fall back).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Literal

import numpy as np
from pydantic import PositiveInt

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.runtime.backend import (
    Backend,
    BackendOptions,
    LayerCall,
    LayerInfo,
    OperatorCoverage,
    OperatorTimes,
    Runner,
    TensorInfo,
)
from modelyard.runtime.graph_layers import load_layer_map
from modelyard.runtime.onnx_graph import GraphLayers, graph_precision, load_onnx

PRECISION_HINTS = ("f32", "f16", "bf16")
_OV_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
_PERFORMANCE_HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


class OpenVinoOptions(BackendOptions):
    """Args (``None``: the default):
    precision: inference precision hint ``f32``, ``f16`` or ``bf16``; default the IR's own hint, else ``f32``
        (never the device default, see the module docstring).
    depth: layer granularity for layer-wise comparison (ONNX models only).
    threads: ``INFERENCE_NUM_THREADS``.
    performance_hint: ``latency`` or ``throughput`` (``PERFORMANCE_HINT``).
    streams: ``NUM_STREAMS``.
    """

    precision: Literal["f32", "f16", "bf16"] | None = None
    depth: PositiveInt | None = None
    threads: PositiveInt | None = None
    performance_hint: Literal["latency", "throughput"] | None = None
    streams: PositiveInt | None = None

    def compile_config(self, hint: str) -> dict:
        config: dict = {"INFERENCE_PRECISION_HINT": hint}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.performance_hint:
            config["PERFORMANCE_HINT"] = _PERFORMANCE_HINTS[self.performance_hint]
        if self.streams:
            config["NUM_STREAMS"] = self.streams
        return config


def ov_dtype_name(element_type) -> str:
    name = element_type.get_type_name()
    return {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64", "i64": "int64",
            "i32": "int32", "i8": "int8", "u8": "uint8", "boolean": "bool"}.get(name, name)


class OpenVinoRunner(Runner):
    """A compiled OpenVINO model. Intermediates are extra outputs added by tensor name (recompiled once per set)."""

    def __init__(self, core, model, device: str, config: dict, graph: GraphLayers | None, layer_names: list,
                 info: dict):
        self.core = core
        self.model = model
        self.ov_device = device
        self.config = config
        self.hint = config["INFERENCE_PRECISION_HINT"]
        self.graph = graph
        self._layers = layer_names
        self.compiled = self._compile(model)
        inputs = []
        for port in model.inputs:
            dims = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
            inputs.append(TensorInfo(port.get_any_name(), dims, ov_dtype_name(port.get_element_type())))
        outputs = [port.get_any_name() for port in model.outputs]
        info = dict(info)
        info["inference_precision_hint"] = self.hint
        if len(config) > 1:
            info["compile_config"] = {k: str(v) for k, v in config.items()}
        compiled_precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        info["compiled_inference_precision"] = getattr(
            compiled_precision, "get_type_name", lambda: str(compiled_precision)
        )()
        super().__init__(inputs, outputs, info)
        self._probe_models: dict[tuple[str, ...], object] = {}
        self._replay_models: dict[str, object] = {}

    def _compile(self, model, **extra):
        config = {**self.config, **extra}
        try:
            return self.core.compile_model(model, self.ov_device, config)
        except RuntimeError as exc:
            raise InvalidInput(f"OpenVINO cannot compile the model for {self.ov_device} with {config}: "
                               f"{str(exc).splitlines()[0]}") from None

    def _run(self, compiled, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            result = compiled(feeds)
        except RuntimeError as exc:
            raise InvalidInput(f"{self.backend_name}: inference failed: {str(exc).splitlines()[0]}") from None
        out: dict[str, np.ndarray] = {}
        for port, value in result.items():
            for name in port.get_names():
                out[name] = np.array(value, copy=True)
        return out

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._run(self.compiled, feeds)
        return {name: values[name] for name in self.output_names}

    def _layers_impl(self) -> list[LayerInfo]:
        return list(self._layers)

    def _probe(self, feeds: dict[str, np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
        key = tuple(sorted(set(tensors)))
        if not key:
            return {}
        compiled = self._probe_models.get(key)
        if compiled is None:
            model = self.model.clone()
            try:
                model.add_outputs(list(key))
            except RuntimeError as exc:
                raise InvalidInput(f"OpenVINO model lacks an intermediate tensor: {str(exc).splitlines()[0]}") from None
            compiled = self._compile(model)
            self._probe_models = {key: compiled}
        values = self._run(compiled, feeds)
        return {name: values[name] for name in key if name in values}

    def _tensor_of(self, names: list[str]) -> dict[str, str]:
        by_name = {layer.name: layer.target_name for layer in self._layers}
        return {n: by_name[n] for n in names if n in by_name}

    def _intermediates_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        tensors = self._tensor_of(names)
        values = self._probe(feeds, list(tensors.values()))
        return {name: values[tensor] for name, tensor in tensors.items() if tensor in values}

    def _layer_calls_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, LayerCall]:
        if self.graph is None:
            return {}
        wanted = [n for n in names if n in self.graph.by_name]
        values = self._probe(feeds, self.graph.boundary_tensors(wanted))
        return {n: LayerCall([values[t] for t in self.graph.by_name[n].inputs if t in values]) for n in wanted}

    def _replay_impl(self, feeds: dict[str, np.ndarray], calls: dict[str, LayerCall]) -> dict[str, np.ndarray]:
        if self.graph is None:  # an IR cannot be cut into layers here; only ONNX-loaded models replay
            return {}
        wanted = [n for n in calls if n in self.graph.by_name]
        own = self._probe(feeds, [t for t in self.graph.boundary_tensors(wanted) if t not in feeds])
        own.update(feeds)
        results: dict[str, np.ndarray] = {}
        for name in wanted:
            layer_feeds, _ = self.graph.replay_feeds(name, calls[name], own)
            compiled = self._replay_models.get(name)
            if compiled is None:
                try:
                    submodel = self.graph.submodel(name)
                except Unavailable as exc:  # this layer is reported as not replayable; the others still replay
                    self.info.setdefault("replay_skipped", {})[name] = str(exc)
                    continue
                compiled = self._compile(self.core.read_model(submodel.SerializeToString()))
                self._replay_models[name] = compiled
            output = self.graph.by_name[name].output
            values = self._run(compiled, layer_feeds)
            if output in values:
                results[name] = values[output]
        return results

    def _profile_impl(self, feeds: dict[str, np.ndarray], iterations: int) -> OperatorTimes:
        # NOTE: counters slow inference a little, so only a copy compiled for profiling has them
        request = self._compile(self.model, PERF_COUNT=True).create_infer_request()
        request.infer(feeds)  # warm-up, not counted
        durations: dict[str, list[float]] = {}
        nodes: dict[str, tuple[str, float]] = {}
        for _ in range(iterations):
            request.infer(feeds)
            for info in request.get_profiling_info():
                if str(info.status).endswith("NOT_RUN"):
                    continue
                us = info.real_time.total_seconds() * 1e6
                op = f"{info.node_type} ({info.exec_type})"
                durations.setdefault(op, []).append(us)
                nodes[info.node_name] = (op, nodes.get(info.node_name, (op, 0.0))[1] + us)
        return OperatorTimes("openvino performance counters", durations, nodes)

    def _close_impl(self) -> None:
        self.compiled = None
        self._probe_models = {}
        self._replay_models = {}


class OpenVinoBackend(Backend):
    """``openvino:<device>``. Load options: :class:`OpenVinoOptions` (the precision hint is always set
    explicitly)."""

    name = "openvino"
    devices = tuple(_OV_DEVICES)
    formats = ("openvino", "onnx")
    requires = "openvino"
    options_model = OpenVinoOptions

    def _available_impl(self) -> tuple[bool, str]:
        try:
            import openvino as ov
        except ImportError as exc:
            return False, f"openvino is not installed: {exc}"
        found = ov.Core().available_devices
        wanted = _OV_DEVICES[self.device]
        if not any(d == wanted or d.startswith(wanted + ".") for d in found):
            return False, f"OpenVINO {ov.__version__} sees no {wanted} device (it sees {', '.join(found) or 'none'})"
        return True, ""

    def _load_impl(self, artifact, options: OpenVinoOptions) -> Runner:
        import openvino as ov

        hint, depth = options.precision, options.depth
        core = ov.Core()
        info = {"openvino": ov.__version__}
        graph = None
        if artifact.format == "onnx":
            onnx_model = load_onnx(artifact.path)
            graph = GraphLayers(onnx_model, artifact.path, depth)
            layers = [LayerInfo(x.name, x.output, x.op_types) for x in graph.layers]
            info["precision"] = graph_precision(onnx_model)
            source = str(artifact.path)
        else:
            xml = artifact.path
            if not xml.with_suffix(".bin").is_file():
                raise InvalidInput(f"OpenVINO IR {xml.name} has no {xml.with_suffix('.bin').name} beside it")
            saved = load_layer_map(xml) or []
            layers = [LayerInfo(x.name, x.output, x.op_types) for x in saved]
            source = str(xml)
        try:
            model = core.read_model(source)
        except RuntimeError as exc:
            raise InvalidInput(f"OpenVINO cannot read {artifact.path.name}: {str(exc).splitlines()[0]}") from None
        if hint is None:
            # an IR may carry a hint (the openvino-bf16-hint pass); otherwise pin f32, never the device default
            key = ["runtime_options", "INFERENCE_PRECISION_HINT"]
            hint = model.get_rt_info(key).astype(str) if model.has_rt_info(key) else "f32"
            if hint not in PRECISION_HINTS:
                raise InvalidInput(f"{artifact.path.name}: unknown INFERENCE_PRECISION_HINT {hint!r} in rt_info")
        if artifact.format == "openvino":
            info["precision"] = _ir_precision(model)
            known = {name for op in model.get_ops() for out in op.outputs() for name in out.get_names()}
            layers = [x for x in layers if x.target_name in known]
        return OpenVinoRunner(core, model, _OV_DEVICES[self.device], options.compile_config(hint), graph, layers,
                              info)

    def precision_hints(self) -> tuple[list[str], dict[str, str]]:
        """The precision hints this device computes natively here (``f32`` always), and the others with why."""
        try:
            import openvino as ov

            caps = set(ov.Core().get_property(_OV_DEVICES[self.device], "OPTIMIZATION_CAPABILITIES"))
        except Exception as exc:  # noqa: BLE001 - an absent or broken OpenVINO leaves f32 only
            return ["f32"], {"bf16": f"cannot query OpenVINO {_OV_DEVICES[self.device]} capabilities: {exc}"}
        chosen, skipped = ["f32"], {}
        for hint, cap in (("bf16", "BF16"), ("f16", "FP16")):
            if cap in caps:
                chosen.append(hint)
            else:
                skipped[hint] = (f"the {_OV_DEVICES[self.device]} plugin reports no {cap} compute here "
                                 "(it would run as f32)")
        return chosen, skipped

    def _coverage_impl(self, artifact) -> OperatorCoverage:
        import openvino as ov

        self.require_available("query")
        core = ov.Core()
        try:
            model = core.read_model(str(artifact.path))
        except RuntimeError as exc:
            message = str(exc)
            failed = sorted(set(re.findall(r"OpType:\s*([A-Za-z0-9_]+)", message))) or ["?"]
            ops = tuple({"op": op, "count": 1, "status": "unsupported", "runs_on": "none",
                         "note": "frontend cannot convert"} for op in failed)
            return OperatorCoverage(self.full_name, "OpenVINO ONNX frontend", ops, (message.splitlines()[0],))
        ov_device = _OV_DEVICES[self.device]
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
            if native[kind]:
                ops.append({"op": kind, "count": native[kind], "status": "native", "runs_on": ov_device, "note": None})
            if native[kind] != count:
                ops.append({"op": kind, "count": count - native[kind], "status": "fallback",
                            "runs_on": "not claimed by " + ov_device, "note": None})
        return OperatorCoverage(self.full_name, f"openvino Core.query_model({ov_device})", tuple(ops),
                                ("op types are OpenVINO opset operations after conversion",))


def _ir_precision(model) -> str:
    types = {op.get_type_name() for op in model.get_ops()}
    if "FakeQuantize" in types or "FakeConvert" in types:
        return "int8"
    consts = {
        op.get_output_element_type(0).get_type_name() for op in model.get_ops() if op.get_type_name() == "Constant"
    }
    if "f16" in consts:
        return "fp16"
    return "fp32"
