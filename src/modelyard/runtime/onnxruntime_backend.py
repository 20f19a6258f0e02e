"""ONNX Runtime backend: ``onnxruntime:cpu`` always; ``cuda``, ``tensorrt``, ``cann``, ``openvino``, ``dml``,
``coreml`` and ``qnn`` execution providers when the installed onnxruntime build has them.

Intermediate tensors are exposed by adding them as graph outputs (a second session, built once per set of
names); a layer is replayed by extracting it as a submodel and running that alone.
"""

from __future__ import annotations

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.runtime.backend import Backend, Runner, TensorInfo
from modelyard.runtime.onnx_graph import (
    GraphLayerHooks, GraphLayers, graph_precision, load_onnx, onnx_dtype_name, with_outputs,
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


def session_options(threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    if threads:
        options.intra_op_num_threads = threads
    return options


class OnnxRuntimeRunner(GraphLayerHooks, Runner):
    """An ONNX model in an ORT session. ``info`` records the providers actually used and the graph precision."""

    def __init__(self, model, path, provider: str, depth: int | None, threads: int | None):
        import onnxruntime as ort

        self.model = model
        self.provider = provider
        self.providers = [provider] + (["CPUExecutionProvider"] if provider != "CPUExecutionProvider" else [])
        self.threads = threads
        self.session = self._session(model)
        inputs = [
            TensorInfo(i.name, tuple(d if isinstance(d, int) else (d or None) for d in i.shape), onnx_dtype_name(i.type))
            for i in self.session.get_inputs()
        ]
        outputs = [o.name for o in self.session.get_outputs()]
        info = {
            "onnxruntime": ort.__version__,
            "providers": self.session.get_providers(),
            "precision": graph_precision(model),
            "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        }
        super().__init__(inputs, outputs, info)
        self.graph = GraphLayers(model, path, depth)
        self._probe_sessions: dict[tuple[str, ...], object] = {}
        self._replay_sessions: dict[str, object] = {}

    def _session(self, model):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(
                model.SerializeToString(), sess_options=session_options(self.threads), providers=self.providers
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


class OnnxRuntimeBackend(Backend):
    """``onnxruntime:<ep>``. Load options: ``depth`` (layer granularity), ``threads`` (intra-op threads)."""

    name = "onnxruntime"
    devices = tuple(PROVIDERS)
    formats = ("onnx",)

    def _available_impl(self) -> tuple[bool, str]:
        import onnxruntime as ort

        provider = PROVIDERS[self.device]
        if provider in ort.get_available_providers():
            return True, ""
        package = _PACKAGES.get(self.device, "an onnxruntime build with it")
        return False, f"onnxruntime {ort.__version__} has no {provider} (needs {package})"

    def _load_impl(self, artifact, options: dict) -> Runner:
        depth = options.pop("depth", None)
        threads = options.pop("threads", None)
        if options:
            raise InvalidInput(f"unknown onnxruntime backend option(s): {', '.join(sorted(options))}")
        model = load_onnx(artifact.path)
        return OnnxRuntimeRunner(model, artifact.path, PROVIDERS[self.device], depth, threads)
