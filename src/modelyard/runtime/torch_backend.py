"""PyTorch backend: ``torch:cpu`` always; ``torch:cuda``, ``torch:npu`` (torch_npu), ``torch:xpu``, ``torch:mps`` when
present. Builds the model from the spec's entrypoint, runs it in eval mode under ``torch.inference_mode``.

Layers are modules: forward hooks capture outputs, forward pre-hooks capture inputs, and ``replay`` calls one
module on inputs captured elsewhere (to separate a layer's own error from inherited error).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import PositiveInt

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.runtime.backend import (
    Backend,
    BackendOptions,
    LayerCall,
    LayerInfo,
    OperatorCoverage,
    Runner,
    TensorInfo,
)

_FLOAT_DTYPES = {"float32", "float16", "bfloat16", "float64"}


def import_entrypoint(entrypoint: str):
    """Return the factory named ``"pkg.module:factory"``; an import failure shows the import error."""
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure while importing user code is the user's to see
        raise InvalidInput(
            f"spec.entrypoint: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise InvalidInput(f"spec.entrypoint: module {module_name!r} has no attribute {attr!r}") from None


def load_state_dict(path: Path) -> dict:
    """Read weights from a ``.safetensors`` file or a ``torch.save`` state dict (``weights_only=True``)."""
    import torch

    if not path.is_file():
        raise NotFound(f"spec.weights: weight file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or hostile files end as one line
        raise InvalidInput(f"spec.weights: cannot read {path.name}: {type(exc).__name__}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InvalidInput(f"spec.weights: {path.name} does not hold a state dict (got {type(state).__name__})")
    return state


def build_torch_model(spec, dtype: str = "float32"):
    """Build the spec's ``torch.nn.Module`` in eval mode on the CPU, with its weights loaded.

    Args:
        spec: a ModelSpec with an ``entrypoint``.
        dtype: parameter dtype, ``float32`` (default) or ``float64`` (used for the noise floor).
    """
    import torch

    if not spec.entrypoint:
        raise InvalidInput("spec.entrypoint: this spec names no PyTorch model")
    factory = import_entrypoint(spec.entrypoint)
    try:
        model = factory(**spec.kwargs)
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"spec.entrypoint: {spec.entrypoint}(**kwargs) failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise InvalidInput(f"spec.entrypoint: {spec.entrypoint} returned {type(model).__name__}, not a torch.nn.Module")
    if spec.weights:
        state = load_state_dict(spec.resolve(spec.weights))
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise InvalidInput(
                f"spec.weights: state dict does not fit the model: missing {result.missing_keys[:5]}"
                f"{'...' if len(result.missing_keys) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
                f"{'...' if len(result.unexpected_keys) > 5 else ''}"
            )
    model = model.eval()
    if dtype == "float64":
        model = model.double()
    return model


def flatten_outputs(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Name every tensor of a model output: a tensor is ``output``; tuples give ``output_0``...; dicts and
    ``transformers`` ModelOutputs give their keys (``logits``); nesting joins with dots."""
    import torch

    if isinstance(value, torch.Tensor):
        return [(prefix or "output", value)]
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if item is not None:
                found.extend(flatten_outputs(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list | tuple):
        base = prefix or "output"
        for i, item in enumerate(value):
            found.extend(flatten_outputs(item, f"{base}_{i}"))
    return found


def name_outputs(value: Any, names: list[str] | None) -> list[tuple[str, Any]]:
    """``flatten_outputs`` renamed with the spec's ``outputs`` when given (counts must match)."""
    flat = flatten_outputs(value)
    if names:
        if len(names) != len(flat):
            raise InvalidInput(
                f"spec.outputs names {len(names)} outputs {names} but the model returns {len(flat)} "
                f"({[n for n, _ in flat]})"
            )
        flat = [(name, tensor) for name, (_, tensor) in zip(names, flat, strict=True)]
    return flat


def first_tensor(value: Any):
    flat = flatten_outputs(value)
    return flat[0][1] if flat else None


def to_numpy(tensor) -> np.ndarray:
    """A numpy copy of ``tensor`` (bf16 widened to fp32).

    NOTE: a copy, not a view: hooks capture tensors that the model may still modify in place (``x += residual``
    in ResNet blocks), and a shared buffer would silently record the later value.
    """
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return np.array(tensor.cpu().numpy(), copy=True)


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}[
        name
    ]


def split_call_name(name: str) -> tuple[str, int]:
    """``"path#2"`` -> ``("path", 2)``; ``"path"`` -> ``("path", 1)``."""
    path, _, call = name.partition("#")
    return path, int(call) if call.isdigit() else 1


class TorchRunner(Runner):
    """A torch module on one device. Options: ``dtype`` (``float32``/``float64``), ``allow_tf32`` (CUDA)."""

    def __init__(self, model, device, spec, dtype: str, info: dict):
        inputs = [TensorInfo(i.name, tuple(i.shape), i.dtype) for i in spec.inputs]
        super().__init__(inputs, list(spec.outputs or []), info)
        self.model = model
        self.device = device
        self.spec = spec
        self.dtype = dtype
        self._modules = dict(model.named_modules())

    def _tensors(self, feeds: dict[str, np.ndarray]) -> list:
        import torch

        tensors = []
        for spec in self.inputs:
            value = feeds[spec.name]
            if value.dtype.name == "bfloat16":
                tensor = torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16)
            else:
                tensor = torch.from_numpy(np.ascontiguousarray(value))
            if spec.dtype in _FLOAT_DTYPES and self.dtype == "float64":
                tensor = tensor.double()
            tensors.append(tensor.to(self.device))
        return tensors

    def _forward(self, feeds: dict[str, np.ndarray]):
        import torch

        with torch.inference_mode():
            try:
                return self.model(*self._tensors(feeds))
            except (RuntimeError, TypeError, ValueError, IndexError) as exc:
                raise InvalidInput(
                    f"{self.backend_name}: the model rejected the feeds: {type(exc).__name__}: {exc}"
                ) from exc

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        named = name_outputs(self._forward(feeds), self.spec.outputs)
        if not self.output_names:
            self.output_names = [name for name, _ in named]
        return {name: to_numpy(tensor) for name, tensor in named}

    def _layers_impl(self) -> list[LayerInfo]:
        return [
            LayerInfo(path, path)
            for path, module in self.model.named_modules()
            if path and not any(True for _ in module.children())
        ]

    def resolve(self, name: str) -> tuple[str, int] | None:
        """Map a layer name to ``(module path, call)``; TorchScript's ``act_1`` means the 2nd call of ``act``."""
        path, call = split_call_name(name)
        if path in self._modules and path:
            return path, call
        head, _, tail = path.rpartition("_")
        if tail.isdigit() and head in self._modules and head:
            return head, int(tail) + 1
        return None

    @contextmanager
    def _hooked(self, names: list[str], on_call) -> Iterator[None]:
        """Register pre- or post-hooks on the modules behind ``names``; yields while they are active."""
        wanted: dict[str, dict[int, str]] = {}
        for name in names:
            resolved = self.resolve(name)
            if resolved:
                wanted.setdefault(resolved[0], {})[resolved[1]] = name
        counts = dict.fromkeys(wanted, 0)
        handles = []
        for path, by_call in wanted.items():
            handles.append(on_call(self._modules[path], path, by_call, counts))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _intermediates_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
        captured: dict[str, np.ndarray] = {}

        def attach(module, path, by_call, counts):
            def hook(_module, _args, output):
                counts[path] += 1
                name = by_call.get(counts[path])
                tensor = first_tensor(output)
                if name is not None and tensor is not None:
                    captured[name] = to_numpy(tensor)

            return module.register_forward_hook(hook)

        with self._hooked(names, attach):
            self._forward(feeds)
        return captured

    def _layer_calls_impl(self, feeds: dict[str, np.ndarray], names: list[str]) -> dict[str, LayerCall]:
        captured: dict[str, LayerCall] = {}

        def convert(value):
            import torch

            if isinstance(value, torch.Tensor):
                return to_numpy(value)
            if isinstance(value, list | tuple):
                return type(value)(convert(v) for v in value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value

        def attach(module, path, by_call, counts):
            def hook(_module, args, kwargs):
                counts[path] += 1
                name = by_call.get(counts[path])
                if name is not None:
                    captured[name] = LayerCall(list(convert(list(args))), convert(dict(kwargs)))

            return module.register_forward_pre_hook(hook, with_kwargs=True)

        with self._hooked(names, attach):
            self._forward(feeds)
        return captured

    def _replay_impl(self, feeds: dict[str, np.ndarray], calls: dict[str, LayerCall]) -> dict[str, np.ndarray]:
        import torch

        float_type = torch_dtype(self.dtype)

        def convert(value):
            if isinstance(value, np.ndarray):
                tensor = torch.from_numpy(np.ascontiguousarray(value))
                if tensor.is_floating_point():
                    tensor = tensor.to(float_type)
                return tensor.to(self.device)
            if isinstance(value, list | tuple):
                return type(value)(convert(v) for v in value)
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            return value

        results: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            for name, call in calls.items():
                resolved = self.resolve(name)
                if resolved is None:
                    continue
                try:
                    output = self._modules[resolved[0]](*convert(call.args), **convert(call.kwargs))
                except (RuntimeError, TypeError, ValueError) as exc:
                    self.info.setdefault("replay_errors", {})[name] = f"{type(exc).__name__}: {exc}"
                    continue
                tensor = first_tensor(output)
                if tensor is not None:
                    results[name] = to_numpy(tensor)
        return results

    def _close_impl(self) -> None:
        self.model = None
        self._modules = {}


class TorchOptions(BackendOptions):
    """Args:
    dtype: ``float32`` (default) or ``float64`` (the noise floor's reference; torch models only).
    allow_tf32: CUDA only; default ``False`` so the reference is true fp32 (recorded in ``runner.info``).
    threads: intra-op threads. torch's thread count is process-wide: it is set at load and restored at close.
    """

    dtype: Literal["float32", "float64"] = "float32"
    allow_tf32: bool = False
    threads: PositiveInt | None = None


class TorchBackend(Backend):
    """``torch:<device>``. Load options: :class:`TorchOptions`.

    Runs ModelSpec models (built from their code) and ONNX graphs (each node as a torch call, see
    :mod:`modelyard.runtime.onnx_torch`): an ONNX model reaches any accelerator that has a torch device plugin.
    """

    name = "torch"
    devices = ("cpu", "cuda", "npu", "xpu", "mps")
    formats = ("torch", "onnx")
    requires = "torch"
    options_model = TorchOptions

    def _available_impl(self) -> tuple[bool, str]:
        import torch

        version = torch.__version__
        if self.device == "cpu":
            return True, ""
        if self.device == "cuda":
            if not torch.backends.cuda.is_built():
                return False, f"this torch build ({version}) has no CUDA support"
            if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
                return False, "no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES)"
            return True, ""
        if self.device == "npu":
            try:
                importlib.import_module("torch_npu")
            except ImportError as exc:
                return False, f"torch_npu is not installed (Ascend NPU support for torch {version}): {exc}"
            if not torch.npu.is_available():  # type: ignore[attr-defined]
                return False, "torch_npu is installed but no Ascend NPU is visible (check the CANN driver)"
            return True, ""
        if self.device == "xpu":
            if not hasattr(torch, "xpu") or not torch.xpu.is_available():
                return False, f"no Intel XPU is available to this torch build ({version})"
            return True, ""
        if self.device == "mps":
            if not torch.backends.mps.is_built():
                return False, f"this torch build ({version}) has no Apple MPS support"
            if not torch.backends.mps.is_available():
                return False, "MPS is built but not available (needs macOS 12.3+ on Apple silicon)"
            return True, ""
        return False, f"unknown device {self.device!r}"

    def _load_impl(self, artifact, options: TorchOptions) -> Runner:
        runner = self._build(artifact, options)
        if options.threads:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(options.threads)
            runner.info["threads"] = options.threads
            runner.on_close(lambda: torch.set_num_threads(before))
        return runner

    def _build(self, artifact, options: TorchOptions) -> Runner:
        import torch

        dtype, allow_tf32 = options.dtype, options.allow_tf32
        if dtype == "float64" and self.device in ("mps", "npu"):
            raise InvalidInput(f"torch:{self.device} cannot run float64")
        info: dict = {"torch": torch.__version__, "dtype": dtype, "precision": "fp64" if dtype == "float64" else "fp32"}
        if self.device == "cuda":
            # NOTE: cuDNN convolutions default to TF32 on Ampere+, a silent 10-bit mantissa; keep the reference fp32
            torch.backends.cuda.matmul.allow_tf32 = allow_tf32
            torch.backends.cudnn.allow_tf32 = allow_tf32
            info["allow_tf32"] = allow_tf32
            info["device_name"] = torch.cuda.get_device_name(0)
        if artifact.format == "onnx":
            if dtype != "float32":
                raise InvalidInput("torch backend option dtype: an ONNX model runs in the types its graph declares")
            from modelyard.runtime.onnx_torch import OnnxTorchRunner

            return OnnxTorchRunner(artifact.path, self.device, info)
        model = build_torch_model(artifact.spec, dtype=dtype)
        device = torch.device(self.device)
        model = model.to(device)
        return TorchRunner(model, device, artifact.spec, dtype, info)

    def _coverage_impl(self, artifact) -> OperatorCoverage:
        """Which operators have a kernel in the ONNX-on-torch interpreter (nothing falls back there: an op without
        a kernel means the graph cannot load). Static, so an absent device is still answered, with a note."""
        from collections import Counter

        from modelyard.runtime.onnx_graph import load_onnx
        from modelyard.runtime.onnx_torch import supported_ops

        if artifact.format != "onnx":
            raise InvalidInput(f"{self.full_name} coverage needs an ONNX model, got {artifact.format}")
        model = load_onnx(artifact.path)
        kernels = set(supported_ops())
        counts = Counter((n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
                         for n in model.graph.node)
        ops = tuple({"op": op, "count": count, "status": "native" if op in kernels else "unsupported",
                     "runs_on": self.full_name if op in kernels else "none", "note": None}
                    for op, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        notes = ["static: the interpreter's operator table; a few attribute combinations (asymmetric ConvTranspose "
                 "pads, some Resize modes) are refused when the graph loads"]
        ok, why = self.available()
        if not ok:
            notes.append(f"{self.full_name} is not available here: {why}")
        return OperatorCoverage(self.full_name, "ONNX-on-torch operator table", ops, tuple(notes))
