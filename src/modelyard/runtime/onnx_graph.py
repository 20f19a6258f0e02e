"""What the graph backends (ONNX Runtime, OpenVINO, ONNX on torch) share: reading an ONNX file safely, exposing
intermediate tensors as outputs, cutting one layer out as a model of its own, and feeding it another runner's
inputs (:class:`GraphLayerHooks` gives a runner the layer-wise hooks from two methods of its own)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.core.errors import InvalidInput, NotFound, Unavailable
from modelyard.runtime.backend import LayerCall, LayerInfo
from modelyard.runtime.graph_layers import GraphLayer, layers_for

# ONNX TensorProto element type -> numpy dtype name
ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
    10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16",
}
_INT8_OPS = {
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
    "MatMulInteger", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
}


def load_onnx(path: Path):
    """Read and check an ONNX file; a missing or corrupt file is one clear line, not a protobuf traceback."""
    import onnx

    if not path.is_file():
        raise NotFound(f"ONNX model {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends come from protobuf internals
        raise InvalidInput(f"{path.name} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    if not model.graph.node:
        raise InvalidInput(f"{path.name} is not a readable ONNX model: its graph has no nodes")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and plain Exceptions
        raise InvalidInput(f"{path.name} fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    return model


def graph_precision(model) -> str:
    """``int8`` (quantize ops), ``fp16``/``bf16`` (half initializers or casts) or ``fp32``."""
    ops = {n.op_type for n in model.graph.node}
    if ops & _INT8_OPS:
        return "int8"
    types = {t.data_type for t in model.graph.initializer}
    types |= {a.i for n in model.graph.node if n.op_type == "Cast" for a in n.attribute if a.name == "to"}
    if 10 in types:
        return "fp16"
    if 16 in types:
        return "bf16"
    return "fp32"


def onnx_dtype_name(type_string: str) -> str:
    """ORT's ``tensor(float)`` -> ``float32``."""
    inner = type_string.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64", "float16": "float16", "bfloat16": "bfloat16"}.get(inner, inner)


def with_outputs(model, names: list[str]):
    """A copy of ``model`` that also outputs the named tensors (types left for the runtime to infer)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    existing = {o.name for o in copy.graph.output}
    for name in names:
        if name not in existing:
            copy.graph.output.append(onnx.ValueInfoProto(name=name))
            existing.add(name)
    return copy


class GraphLayers:
    """The layer map of one ONNX model plus the per-layer submodels used for replay."""

    def __init__(self, model, model_path: Path | None, depth: int | None = None):
        self.model = model
        self.layers: list[GraphLayer] = layers_for(model, model_path, depth)
        self.by_name = {layer.name: layer for layer in self.layers}
        self._submodels: dict[str, object] = {}
        self._inferred = None

    def output_tensors(self, names: list[str]) -> dict[str, str]:
        """layer name -> tensor name, for the names this graph has."""
        return {n: self.by_name[n].output for n in names if n in self.by_name}

    def boundary_tensors(self, names: list[str]) -> list[str]:
        seen: list[str] = []
        for name in names:
            layer = self.by_name.get(name)
            if layer:
                seen.extend(t for t in layer.inputs if t not in seen)
        return seen

    def submodel(self, name: str):
        """The layer alone as a model: its boundary inputs in, its primary output out."""
        import onnx

        if name not in self._submodels:
            layer = self.by_name[name]
            try:
                if self._inferred is None:
                    # NOTE: onnx>=1.23's Extractor needs value_info at the cut points; exporters often write none
                    self._inferred = onnx.shape_inference.infer_shapes(self.model)
                extracted = onnx.utils.Extractor(self._inferred).extract_model(list(layer.inputs), [layer.output])
            except (ValueError, KeyError) as exc:
                # e.g. a QDQ graph whose layer boundary runs through quantize/dequantize pairs
                raise Unavailable(f"layer {name} cannot be cut out of the ONNX graph for replay: {exc}") from exc
            self._submodels[name] = extracted
        return self._submodels[name]

    def replay_feeds(self, name: str, call: LayerCall, own: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        """Feeds for ``submodel(name)``: each boundary input takes the first unused reference array of the same
        shape and kind (in call order), else this graph's own value.

        Returns:
            the feeds and how many boundary inputs came from the reference.
        """
        layer = self.by_name[name]
        candidates = [a for a in call.arrays() if isinstance(a, np.ndarray)]
        used = [False] * len(candidates)
        feeds: dict[str, np.ndarray] = {}
        from_reference = 0
        for tensor in layer.inputs:
            mine = own.get(tensor)
            if mine is None:
                continue
            chosen = None
            for i, cand in enumerate(candidates):
                if used[i] or cand.shape != mine.shape:
                    continue
                if _kind(cand) != _kind(mine):
                    continue
                chosen = i
                break
            if chosen is None:
                feeds[tensor] = mine
            else:
                used[chosen] = True
                feeds[tensor] = candidates[chosen].astype(mine.dtype, copy=False)
                from_reference += 1
        return feeds, from_reference


class GraphLayerHooks:
    """The layer-wise Runner hooks of a runner that runs one ONNX graph (``self.graph``, a :class:`GraphLayers`).

    The runner supplies ``_probe(feeds, tensors)`` (the named tensors of one run of the whole graph) and
    ``_run_layer(name, submodel, feeds)`` (run one layer cut out as its own model and return its outputs by name;
    raising :class:`InvalidInput` or :class:`Unavailable` reports that layer as not replayable).
    """

    graph: GraphLayers
    info: dict
    _probe: Callable[[dict[str, np.ndarray], list[str]], dict[str, np.ndarray]]
    _run_layer: Callable[[str, Any, dict[str, np.ndarray]], dict[str, np.ndarray]]

    def _layers_impl(self) -> list[LayerInfo]:
        return [LayerInfo(x.name, x.output, x.op_types) for x in self.graph.layers]

    def _intermediates_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        tensors = self.graph.output_tensors(names)
        values = self._probe(feeds, list(tensors.values()))
        return {name: values[tensor] for name, tensor in tensors.items() if tensor in values}

    def _layer_calls_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, LayerCall]:
        wanted = [n for n in names if n in self.graph.by_name]
        values = self._probe(feeds, self.graph.boundary_tensors(wanted))
        return {n: LayerCall([values[t] for t in self.graph.by_name[n].inputs if t in values]) for n in wanted}

    def _replay_impl(self, feeds: dict[str, np.ndarray], calls: dict[str, LayerCall]) -> dict[str, np.ndarray]:
        wanted = [n for n in calls if n in self.graph.by_name]
        own = self._probe(feeds, [t for t in self.graph.boundary_tensors(wanted) if t not in feeds])
        own.update(feeds)
        results: dict[str, np.ndarray] = {}
        used: dict[str, int] = {}
        for name in wanted:
            layer_feeds, from_reference = self.graph.replay_feeds(name, calls[name], own)
            try:
                outputs = self._run_layer(name, self.graph.submodel(name), layer_feeds)
            except (Unavailable, InvalidInput) as exc:  # reported as not replayable; the others still replay
                self.info.setdefault("replay_skipped", {})[name] = str(exc)
                continue
            results[name] = outputs[self.graph.by_name[name].output]
            used[name] = from_reference
        self.info["replay_inputs_from_reference"] = used
        return results


def _kind(array: np.ndarray) -> str:
    if array.dtype == np.bool_:
        return "bool"
    if np.issubdtype(array.dtype, np.integer):
        return "int"
    return "float"
