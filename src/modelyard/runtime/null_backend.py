"""Null backend: ``null:cpu``, numpy only, for tests of the machinery (compare, benchmark, serving) in milliseconds.

It runs any artifact that has a spec, without reading the model: its outputs are a fixed, deterministic function
of the feeds, named by the spec's declared ``outputs`` (default ``["output"]``). Per sample (the first axis of the
first input) it computes::

    embed = tanh(scale * [mean, std, min, max] of every input's values)       # layer "embed", (batch, 4 x inputs)
    head  = embed @ W + offset                                                # layer "head",  (batch, width)
    output_k = head + k                                                       # k-th declared output

``W`` is a fixed matrix (seeded), so two null runners with the same options agree exactly and one with another
``offset`` or ``scale`` disagrees by a known amount: a compare or a gate can be driven to pass or fail on purpose.
Both layers can be read (``intermediates``), fed (``layer_calls``) and replayed, so layer-wise comparison runs on
it too. STYLE.md rule 15: the fake ships with the package.
"""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from modelyard.core.errors import InvalidInput
from modelyard.runtime.backend import Backend, BackendOptions, LayerCall, LayerInfo, OperatorTimes, Runner, TensorInfo

_LAYERS = ("embed", "head")


class NullOptions(BackendOptions):
    """Args:
    width: features of every output. Default 4.
    offset: added to ``head`` (a target that disagrees with the reference by exactly this). Default 0.
    scale: multiplies the input statistics before ``tanh``. Default 1.
    """

    width: PositiveInt = 4
    offset: float = 0.0
    scale: float = 1.0


class NullRunner(Runner):
    """Deterministic numpy outputs computed from the feeds (see the module docstring)."""

    concurrent = True  # pure numpy, no shared state

    def __init__(self, spec, options: NullOptions):
        inputs = [TensorInfo(i.name, tuple(i.shape), i.dtype) for i in spec.inputs]
        super().__init__(inputs, list(spec.outputs or ["output"]), {"precision": "fp32", "engine": "numpy"})
        self.settings = options
        features = 4 * len(inputs)
        self.weights = np.random.default_rng(0).standard_normal((features, options.width)).astype(np.float32)
        self.weights /= np.sqrt(features)

    def _embed(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        columns = []
        for tensor in self.inputs:
            value = np.asarray(feeds[tensor.name], dtype=np.float64)
            rows = value.reshape(value.shape[0], -1) if value.ndim > 1 else value.reshape(-1, 1)
            columns += [rows.mean(axis=1), rows.std(axis=1), rows.min(axis=1), rows.max(axis=1)]
        batch = min(len(c) for c in columns)
        stacked = np.stack([c[:batch] for c in columns], axis=1)
        return np.tanh(self.settings.scale * stacked).astype(np.float32)

    def _head(self, embed: np.ndarray) -> np.ndarray:
        return embed @ self.weights + np.float32(self.settings.offset)

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        head = self._head(self._embed(feeds))
        return {name: head + np.float32(k) for k, name in enumerate(self.output_names)}

    def _layers_impl(self) -> list[LayerInfo]:
        return [LayerInfo(name, name, ("numpy",)) for name in _LAYERS]

    def _intermediates_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        embed = self._embed(feeds)
        values = {"embed": embed, "head": self._head(embed)}
        return {name: values[name] for name in names if name in values}

    def _layer_calls_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, LayerCall]:
        calls = {"embed": LayerCall([feeds[t.name] for t in self.inputs]), "head": LayerCall([self._embed(feeds)])}
        return {name: calls[name] for name in names if name in calls}

    def _replay_impl(self, feeds: dict[str, np.ndarray], calls: dict[str, LayerCall]) -> dict[str, np.ndarray]:
        results = {}
        for name, call in calls.items():
            arrays = call.arrays()
            if name == "embed" and len(arrays) == len(self.inputs):
                results[name] = self._embed({t.name: a for t, a in zip(self.inputs, arrays, strict=True)})
            elif name == "head" and arrays:
                results[name] = self._head(np.asarray(arrays[0], dtype=np.float32))
        return results

    def _profile_impl(self, feeds: dict[str, np.ndarray], iterations: int) -> OperatorTimes:
        import time

        durations: dict[str, list[float]] = {}
        nodes: dict[str, tuple[str, float]] = {}
        self._infer_impl(feeds)  # warm-up, not counted
        for _ in range(iterations):
            start = time.perf_counter()
            embed = self._embed(feeds)
            middle = time.perf_counter()
            self._head(embed)
            end = time.perf_counter()
            for node, op, us in (("embed", "Statistics", (middle - start) * 1e6),
                                 ("head", "MatMul", (end - middle) * 1e6)):
                durations.setdefault(op, []).append(us)
                nodes[node] = (op, nodes.get(node, (op, 0.0))[1] + us)
        return OperatorTimes("null timer", durations, nodes)


class NullBackend(Backend):
    """``null:cpu``: numpy outputs from the feeds, for tests of the machinery. Load options: :class:`NullOptions`."""

    name = "null"
    devices = ("cpu",)
    formats = ("torch", "onnx", "openvino", "torch_export")
    requires = "numpy"
    options_model = NullOptions

    def _available_impl(self) -> tuple[bool, str]:
        return True, ""

    def _load_impl(self, artifact, options: NullOptions) -> Runner:
        if artifact.spec is None:
            raise InvalidInput("the null backend needs the model's spec (its inputs and outputs)")
        return NullRunner(artifact.spec, options)
