"""Run an ONNX graph with torch operators, on any device torch reaches (``cuda``, ``npu``, ``xpu``, ``mps``, ``cpu``).

This is how ``torch:<device>`` runs ``.onnx`` models: where no ONNX Runtime build for the accelerator is installed
(``onnxruntime-gpu``, ``onnxruntime-cann``), the model still runs on it through the torch device plugin. A graph is
compiled once into a list of steps (one torch call per node); nodes whose inputs are all constants are folded at
compile time. Shape arithmetic (``Shape``, ``Gather`` on shapes, ``Concat`` of dims...) stays on the host as small
int64 CPU tensors, so a dynamic ``Reshape`` never waits for the device.

Only the default ONNX domain is covered (:func:`supported_ops`); a graph with anything else (``ai.onnx.ml`` trees,
``com.microsoft`` fused ops, control flow) is refused at load with the list of what is missing.

Example::

    program = OnnxTorchProgram(onnx.load("model.onnx"), device="cuda")
    logits = program.run({"pixel_values": torch.randn(8, 3, 224, 224)})["logits"]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.runtime.backend import Runner, TensorInfo
from modelyard.runtime.onnx_graph import ONNX_DTYPES, GraphLayerHooks, GraphLayers, graph_precision, load_onnx
from modelyard.runtime.onnx_torch_ops import operators, supported_ops

__all__ = ["OnnxTorchProgram", "OnnxTorchRunner", "supported_ops", "unsupported_ops"]

_HOST_NUMEL = 64  # integer constants up to this size stay on the host: they are shapes, axes and indices


# -- compilation ----------------------------------------------------------------------------------------------------

def default_opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)


def unsupported_ops(model) -> list[str]:
    """Operators of ``model`` this module cannot run (``domain::Op`` for other domains), sorted, once each."""
    missing = set()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            missing.add(f"{node.domain}::{node.op_type}")
        elif node.op_type not in operators():
            missing.add(node.op_type)
    return sorted(missing)


def _attributes(node) -> dict[str, Any]:
    import onnx
    import torch
    from onnx import numpy_helper

    attrs: dict[str, Any] = {}
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR:
            attrs[attr.name] = torch.from_numpy(np.array(numpy_helper.to_array(attr.t), copy=True))
        else:
            value = onnx.helper.get_attribute_value(attr)
            attrs[attr.name] = value.decode() if isinstance(value, bytes) else value
    attrs["_n_outputs"] = len(node.output)
    return attrs


class _Step:
    __slots__ = ("fn", "attrs", "inputs", "outputs", "op_type", "name", "release")

    def __init__(self, fn, attrs, inputs, outputs, op_type, name):
        self.fn, self.attrs, self.inputs, self.outputs = fn, attrs, inputs, outputs
        self.op_type, self.name = op_type, name
        self.release: tuple[str, ...] = ()


class OnnxTorchProgram:
    """One ONNX graph compiled to torch calls on ``device``.

    Args:
        model: an ``onnx.ModelProto`` (checked by the caller; local functions are inlined here).
        device: a torch device or its name.

    Raises:
        InvalidInput: the graph uses operators this module does not cover (all are named).
    """

    def __init__(self, model, device="cpu"):
        import torch

        if model.functions:
            import onnx.inliner

            model = onnx.inliner.inline_local_functions(model)
        missing = unsupported_ops(model)
        if missing:
            raise InvalidInput(
                f"torch cannot run this ONNX graph: no torch kernel for {', '.join(missing)} "
                "(run it on an onnxruntime or openvino backend instead)")
        self.device = torch.device(device)
        self.opset = default_opset(model)
        graph = model.graph
        initializer_names = {t.name for t in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in initializer_names]
        self.output_names = [o.name for o in graph.output]
        from onnx import numpy_helper

        constants: dict[str, Any] = {
            t.name: torch.from_numpy(np.array(numpy_helper.to_array(t), copy=True)) for t in graph.initializer
        }
        # names something reads: an op that leaves out an optional output (LayerNormalization's Mean) is fine unless
        # the graph uses it
        self._needed = {name for node in graph.node for name in node.input} | set(self.output_names)
        steps: list[_Step] = []
        with torch.inference_mode():
            for node in graph.node:
                fn = operators()[node.op_type]
                attrs = _attributes(node)
                step = _Step(fn, attrs, tuple(node.input), tuple(node.output), node.op_type, node.name)
                if all(not name or name in constants for name in node.input):
                    values = self._call(step, [constants[n] if n else None for n in node.input])
                    constants.update(zip(node.output, values, strict=False))
                    continue
                steps.append(step)
        self.constants = {name: self._place(value) for name, value in constants.items()}
        self.steps = steps
        self._plan_release()

    def _place(self, tensor):
        """Floats and big tensors go to the device; small integer tensors (shapes, axes) stay on the host."""
        if tensor.is_floating_point() or tensor.numel() > _HOST_NUMEL:
            return tensor.to(self.device)
        return tensor

    def _plan_release(self) -> None:
        """After each step, drop the intermediates no later step reads (peak memory follows the live set)."""
        keep_set = set(self.output_names)
        last_use: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            for name in step.inputs:
                if name and name not in self.constants:
                    last_use[name] = index
        for index, step in enumerate(self.steps):
            step.release = tuple(n for n in set(step.inputs) if n and last_use.get(n) == index and n not in keep_set
                                 and n not in self.input_names)

    def _call(self, step: _Step, values: list):
        try:
            result = step.fn(values, step.attrs, self.opset)
        except InvalidInput:
            raise
        except (RuntimeError, TypeError, ValueError, IndexError, KeyError) as exc:
            raise InvalidInput(
                f"{step.op_type} node {step.name or step.outputs[0]!r} failed: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        result = result if isinstance(result, tuple) else (result,)
        missing = [name for name in step.outputs[len(result):] if name in self._needed]
        if missing:
            raise InvalidInput(f"{step.op_type} node {step.name or step.outputs[0]!r} failed: its output(s) "
                               f"{', '.join(missing)} are not supported, and the graph reads them")
        return result

    def run(self, feeds: dict[str, Any], keep: Sequence[str] = ()) -> dict[str, Any]:
        """Run on torch tensors (moved to the device here); returns the graph outputs plus every name in ``keep``
        that the graph computes or holds."""
        import torch

        env: dict[str, Any] = dict(self.constants)
        for name in self.input_names:
            env[name] = feeds[name].to(self.device, non_blocking=True)
        wanted = set(keep)
        kept: dict[str, Any] = {n: env[n] for n in wanted if n in env}
        with torch.inference_mode():
            for step in self.steps:
                values = self._call(step, [env[n] if n else None for n in step.inputs])
                for name, value in zip(step.outputs, values, strict=False):
                    if name:
                        env[name] = value
                        if name in wanted:
                            kept[name] = value
                for name in step.release:
                    if name not in wanted:
                        env.pop(name, None)
        result = {name: env[name] for name in self.output_names}
        result.update(kept)
        return result

    def trainable(self, names) -> dict[str, Any]:
        """Make the initializers ``names`` trainable leaf tensors (returned by name) for :meth:`forward`. Constants
        folded at compile time are inference tensors, which autograd may not save; they become ordinary ones."""
        self.constants = {k: (v.clone() if v.is_inference() else v) for k, v in self.constants.items()}
        params = {name: self.constants[name].clone().requires_grad_(True) for name in names if name in self.constants}
        self.constants.update(params)
        return params

    def forward(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """:meth:`run` with autograd on (no inference mode), for fine-tuning the weights made :meth:`trainable`.
        Returns the graph outputs."""
        env: dict[str, Any] = dict(self.constants)
        for name in self.input_names:
            env[name] = feeds[name].to(self.device)
        for step in self.steps:
            values = self._call(step, [env[n] if n else None for n in step.inputs])
            env.update((name, value) for name, value in zip(step.outputs, values, strict=False) if name)
        return {name: env[name] for name in self.output_names}


# -- runner ---------------------------------------------------------------------------------------------------------

class OnnxTorchRunner(GraphLayerHooks, Runner):
    """An ONNX file run on torch ``device``. Layers are the graph's torch-module boundaries, as for onnxruntime:
    intermediates are read from the running graph and a layer is replayed as its own cut-out program."""

    def __init__(self, path, device: str, info: dict):
        model = load_onnx(path)
        self.program = OnnxTorchProgram(model, device)
        initializers = {t.name for t in model.graph.initializer}
        inputs = []
        for value in model.graph.input:
            if value.name in initializers:
                continue
            tensor_type = value.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                         for d in tensor_type.shape.dim)
            inputs.append(TensorInfo(value.name, dims, ONNX_DTYPES.get(tensor_type.elem_type, "unknown")))
        info = dict(info, precision=graph_precision(model), opset=self.program.opset, onnx_on_torch=True)
        super().__init__(inputs, self.program.output_names, info)
        self.device = device
        self.graph = GraphLayers(model, path)
        self._replays: dict[str, OnnxTorchProgram] = {}

    @staticmethod
    def _tensors(feeds: dict[str, np.ndarray]) -> dict:
        import torch

        # NOTE: not np.ascontiguousarray, which turns a 0-D feed into 1-D; a read-only array (broadcast, memmap) is
        # copied because torch cannot wrap one safely
        return {n: torch.from_numpy(np.require(v, requirements=["C", "W"])) for n, v in feeds.items()}

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.program.run(self._tensors(feeds))
        return {n: _numpy(outputs[n]) for n in self.output_names}

    def _probe(self, feeds: dict[str, np.ndarray], tensors: list[str]) -> dict[str, np.ndarray]:
        values = self.program.run(self._tensors(feeds), keep=tensors)
        return {t: _numpy(values[t]) for t in tensors if t in values}

    def _run_layer(self, name: str, submodel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        program = self._replays.get(name)
        if program is None:
            program = self._replays[name] = OnnxTorchProgram(submodel, self.device)
        return {n: _numpy(v) for n, v in program.run(self._tensors(feeds)).items()}

    def _close_impl(self) -> None:
        self.program = None
        self._replays = {}


def _numpy(tensor) -> np.ndarray:
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.cpu().numpy()
