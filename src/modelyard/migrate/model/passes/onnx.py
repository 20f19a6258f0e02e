"""ONNX passes: torch -> ONNX export, simplification, fp16, INT8 dynamic and INT8 static (QDQ) quantization."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.passes.base import Pass, PassConfig, PassFailed, copy_layer_map
from modelyard.runtime.spec import Artifact
from modelyard.runtime.tracing import example_inputs, quiet_exporters


class TorchToOnnxConfig(PassConfig):
    """Args:
    opset: ONNX opset (default: the exporter's default).
    exporter: ``auto`` (dynamo, falling back to TorchScript), ``dynamo`` or ``torchscript``.
    dynamic: make the spec's named dims dynamic axes (default True).
    optimize: let the dynamo exporter run its graph optimiser (constant folding, Conv+BN fusion). Default True.
    """

    opset: int | None = Field(default=None, ge=7, le=30)
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto"
    dynamic: bool = True
    optimize: bool = True


class TorchToOnnx(Pass):
    """torch -> ONNX with the dynamo exporter (module scopes recorded per node), falling back to TorchScript."""

    name = "torch-to-onnx"
    description = "Export a PyTorch model to ONNX (dynamo exporter, TorchScript fallback), dynamic axes from the spec."
    config_model = TorchToOnnxConfig
    input_formats = ("torch",)
    output_format = "onnx"
    suffix = ".onnx"

    def _run_impl(
        self, artifact: Artifact, config: TorchToOnnxConfig, out_dir: Path, stem: str, notes: list[str]
    ) -> Path:
        import onnx
        import torch

        from modelyard.runtime.graph_layers import graph_layers, save_layer_map
        from modelyard.runtime.torch_backend import build_torch_model, name_outputs

        spec = artifact.spec
        model = build_torch_model(spec)
        args = example_inputs(spec)
        with torch.inference_mode():
            output_names = [name for name, _ in name_outputs(model(*args), spec.outputs)]
        input_names = [i.name for i in spec.inputs]
        target = out_dir / f"{stem}"
        errors: list[str] = []
        exported = False
        if config.exporter in ("auto", "dynamo"):
            try:
                self._dynamo(model, args, spec, config, input_names, output_names, target)
                exported = True
                notes.append("exported with the dynamo exporter")
            except Exception as exc:  # noqa: BLE001 - any exporter failure is a reason to fall back
                errors.append(f"dynamo exporter: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                if config.exporter == "dynamo":
                    raise PassFailed(f"pass {self.name}: {errors[-1]}") from None
                notes.append(f"dynamo exporter failed ({errors[-1]}); fell back to the TorchScript exporter")
        if not exported:
            try:
                self._torchscript(model, args, spec, config, input_names, output_names, target)
            except Exception as exc:  # noqa: BLE001
                errors.append(
                    f"TorchScript exporter: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                )
                raise PassFailed(f"pass {self.name}: export failed: {'; '.join(errors)}") from None
            notes.append("exported with the TorchScript exporter")
        exported_model = onnx.load(str(target))
        layers = graph_layers(exported_model)
        if layers:
            save_layer_map(layers, target)
        else:
            notes.append("the graph carries no module scopes: layer-wise compare cannot map layers")
        return target

    @staticmethod
    def _dynamo(model, args, spec, config, input_names, output_names, target: Path) -> None:
        import torch

        dynamic_shapes = None
        if config.dynamic:
            dims: dict[str, object] = {}
            dynamic_shapes = {}
            for inp in spec.inputs:
                axes = {}
                for axis, d in enumerate(inp.shape):
                    if isinstance(d, str):
                        dims.setdefault(d, torch.export.Dim(d))
                        axes[axis] = dims[d]
                dynamic_shapes[inp.name] = axes or None
            forward_names = _forward_arg_names(model, len(spec.inputs))
            if forward_names:
                dynamic_shapes = {fn: dynamic_shapes[i.name] for fn, i in zip(forward_names, spec.inputs, strict=True)}
            else:
                dynamic_shapes = tuple(dynamic_shapes[i.name] for i in spec.inputs)
        with quiet_exporters():
            program = torch.onnx.export(
                model, args, None, dynamo=True, input_names=input_names, output_names=output_names,
                dynamic_shapes=dynamic_shapes, opset_version=config.opset, optimize=config.optimize, verbose=False,
            )
            program.save(str(target))

    @staticmethod
    def _torchscript(model, args, spec, config, input_names, output_names, target: Path) -> None:
        import torch

        dynamic_axes = None
        if config.dynamic:
            dynamic_axes = {}
            for inp in spec.inputs:
                axes = {axis: d for axis, d in enumerate(inp.shape) if isinstance(d, str)}
                if axes:
                    dynamic_axes[inp.name] = axes
        with quiet_exporters():
            torch.onnx.export(
                model, args, str(target), dynamo=False, input_names=input_names, output_names=output_names,
                dynamic_axes=dynamic_axes, opset_version=config.opset or 17,
            )


def _forward_arg_names(model, count: int) -> list[str] | None:
    """The first ``count`` parameter names of ``model.forward`` (dynamo keys dynamic_shapes by them)."""
    import inspect

    try:
        params = [
            p.name for p in inspect.signature(model.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    return params[:count] if len(params) >= count else None


class SimplifyConfig(PassConfig):
    """Args:
    level: ``basic`` ONNX Runtime offline optimisations (constant folding, redundant node removal; standard
        ONNX ops only, so the result stays portable). Default ``basic``.
    """

    level: Literal["basic"] = "basic"


class OnnxSimplify(Pass):
    """Simplify with ONNX Runtime's offline graph optimiser (onnxsim/onnxslim are not dependencies)."""

    name = "onnx-simplify"
    description = "Constant-fold and clean an ONNX graph with ONNX Runtime's basic offline optimisations."
    config_model = SimplifyConfig
    input_formats = ("onnx",)
    output_format = "onnx"
    suffix = ".simplified.onnx"

    def _run_impl(self, artifact: Artifact, config: SimplifyConfig, out_dir: Path, stem: str, notes: list[str]) -> Path:
        import onnx
        import onnxruntime as ort

        target = out_dir / stem
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(target)
        options.log_severity_level = 3
        ort.InferenceSession(str(artifact.path), sess_options=options, providers=["CPUExecutionProvider"])
        onnx.checker.check_model(onnx.load(str(target)))
        before = len(onnx.load(str(artifact.path)).graph.node)
        after = len(onnx.load(str(target)).graph.node)
        notes.append(f"{before} -> {after} nodes")
        copy_layer_map(artifact.path, target)
        return target


class Fp16Config(PassConfig):
    """Args:
    keep_io_types: keep float32 inputs/outputs (casts inside). Default True.
    op_block_list: op types kept in float32 (default: onnxruntime's list of ops unsafe in fp16).
    """

    keep_io_types: bool = True
    op_block_list: list[str] | None = None


class OnnxFp16(Pass):
    """Convert an ONNX model's float32 weights and activations to float16."""

    name = "onnx-fp16"
    description = "Convert float32 weights and compute of an ONNX model to float16 (float32 I/O by default)."
    config_model = Fp16Config
    input_formats = ("onnx",)
    output_format = "onnx"
    suffix = ".fp16.onnx"

    def _run_impl(self, artifact: Artifact, config: Fp16Config, out_dir: Path, stem: str, notes: list[str]) -> Path:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = onnx.load(str(artifact.path))
        kwargs = {"keep_io_types": config.keep_io_types}
        if config.op_block_list is not None:
            kwargs["op_block_list"] = config.op_block_list
        with quiet_exporters():
            converted = convert_float_to_float16(model, **kwargs)
        # NOTE: the converter appends its input casts at the end of the node list; ONNX wants topological order
        topological_sort(converted.graph)
        target = out_dir / stem
        onnx.save(converted, str(target))
        copy_layer_map(artifact.path, target)
        return target


def topological_sort(graph) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs (stable: among
    ready nodes the earliest original position goes first)."""
    import heapq

    nodes = list(graph.node)
    producers = {out: idx for idx, node in enumerate(nodes) for out in node.output if out}
    waiting = [0] * len(nodes)
    dependants: dict[int, list[int]] = {}
    for idx, node in enumerate(nodes):
        for name in set(node.input):
            source = producers.get(name)
            if source is not None and source != idx:
                waiting[idx] += 1
                dependants.setdefault(source, []).append(idx)
    ready = [idx for idx, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    ordered: list[int] = []
    while ready:
        idx = heapq.heappop(ready)
        ordered.append(idx)
        for nxt in dependants.get(idx, ()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, nxt)
    if len(ordered) != len(nodes):
        raise PassFailed("the graph has a cycle and cannot be ordered")
    del graph.node[:]
    graph.node.extend(nodes[i] for i in ordered)


def calibration_digest(spec, calibration: str | None) -> str:
    """A digest of the calibration data for cache keys (``random`` when the feeds are random)."""
    if not calibration:
        return "random"
    path = Path(calibration).expanduser()
    digest = hashlib.sha256()
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.is_file():
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()


def calibration_feeds(spec, calibration: str | None, samples: int, input_names: set[str]) -> list[dict]:
    """Calibration samples: real ones from ``calibration`` when given, else seeded random feeds (noted)."""
    from modelyard.runtime.feeds import load_feeds, random_feeds

    source = load_feeds(calibration, spec, samples) if calibration else random_feeds(spec, samples, seed=7)
    return [{k: v for k, v in feeds.items() if k in input_names} for feeds in source]


class Int8DynamicConfig(PassConfig):
    """Args:
    weight_type: ``qint8`` (default) or ``quint8``.
    per_channel: per-channel weight scales. Default False.
    op_types: op types to quantize (default: onnxruntime's, MatMul/Gemm/Conv/...).
    """

    weight_type: Literal["qint8", "quint8"] = "qint8"
    per_channel: bool = False
    op_types: list[str] | None = None


class Int8Dynamic(Pass):
    """INT8 weights with activations quantized at run time (onnxruntime.quantization.quantize_dynamic)."""

    name = "int8-dynamic"
    description = "Quantize weights to INT8, activations dynamically at run time (ONNX Runtime)."
    config_model = Int8DynamicConfig
    input_formats = ("onnx",)
    output_format = "onnx"
    suffix = ".int8.onnx"

    def _run_impl(
        self, artifact: Artifact, config: Int8DynamicConfig, out_dir: Path, stem: str, notes: list[str]
    ) -> Path:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        target = out_dir / stem
        with quiet_exporters():
            quantize_dynamic(
                str(artifact.path), str(target),
                weight_type=QuantType.QInt8 if config.weight_type == "qint8" else QuantType.QUInt8,
                per_channel=config.per_channel,
                op_types_to_quantize=config.op_types,
            )
        copy_layer_map(artifact.path, target)
        return target


class Int8StaticConfig(PassConfig):
    """Args:
    calibration: calibration data (``.npz``, ``.npy`` folder, image folder); default seeded random feeds.
    samples: calibration samples. Default 16.
    method: ``minmax`` (default), ``entropy`` or ``percentile``.
    per_channel: per-channel weight scales. Default True.
    activation_type, weight_type: ``qint8`` or ``quint8``. Defaults ``quint8`` / ``qint8``.
    """

    # NOTE: where the calibration data lies does not change the result, its content does: the pass keys its
    # cache on the data's digest (``_cache_extra``), so the same data in another folder is a cache hit
    not_hashed = frozenset({"calibration"})

    calibration: str | None = None
    samples: int = Field(default=16, ge=1, le=10000)
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    activation_type: Literal["qint8", "quint8"] = "quint8"
    weight_type: Literal["qint8", "quint8"] = "qint8"


class Int8Static(Pass):
    """INT8 static quantization in QDQ format, calibrated on real or random samples."""

    name = "int8-static"
    description = "Quantize to INT8 QDQ with calibration data (ONNX Runtime static quantization)."
    config_model = Int8StaticConfig
    input_formats = ("onnx",)
    output_format = "onnx"
    suffix = ".int8-static.onnx"

    def _cache_extra(self, artifact: Artifact, config: Int8StaticConfig) -> str:
        return calibration_digest(artifact.spec, config.calibration)

    def _kept_in_float(self, model, config: Int8StaticConfig, notes: list[str]) -> list[str]:
        """Node names to leave unquantized; none here (subclasses keep some in float)."""
        return []

    def _run_impl(
        self, artifact: Artifact, config: Int8StaticConfig, out_dir: Path, stem: str, notes: list[str]
    ) -> Path:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )

        model = onnx.load(str(artifact.path))
        samples = calibration_feeds(artifact.spec, config.calibration, config.samples,
                                    {i.name for i in model.graph.input})
        if not config.calibration:
            notes.append(f"calibrated on {len(samples)} seeded random samples: pass --calib DATA for real ranges")
        excluded = self._kept_in_float(model, config, notes)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self._iter = iter(samples)

            def get_next(self):
                return next(self._iter, None)

        types = {"qint8": QuantType.QInt8, "quint8": QuantType.QUInt8}
        methods = {
            "minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }
        target = out_dir / stem
        try:
            with quiet_exporters():
                quantize_static(
                    str(artifact.path), str(target), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=config.per_channel, activation_type=types[config.activation_type],
                    weight_type=types[config.weight_type], calibrate_method=methods[config.method],
                    nodes_to_exclude=excluded or None,
                )
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001 - calibration failures come from deep inside onnxruntime
            raise PassFailed(f"pass {self.name}: quantization failed: {type(exc).__name__}: {exc}") from None
        for leftover in out_dir.glob("*augmented*"):
            leftover.unlink()
        copy_layer_map(artifact.path, target)
        return target
