"""Turn models that cannot be served as they are into ONNX at registration: PyTorch (from a ModelSpec's
entrypoint), scikit-learn estimators and LightGBM models. Every function writes one ``.onnx`` file and returns
notes for the version's lineage.

NOTE: the registry sits below ``migrate`` in the import layers, so it carries its own small torch -> ONNX export
(dynamo exporter with the spec's named dims as dynamic axes, TorchScript as the fallback) instead of calling the
migration pass.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.runtime.tracing import example_inputs, quiet_exporters


def _forward_names(model, count: int) -> list[str] | None:
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    return params[:count] if len(params) >= count else None


def torch_to_onnx(spec, target: Path) -> list[str]:
    """Export the spec's PyTorch model to ``target``; named dims of the inputs become dynamic axes."""
    import torch

    from modelyard.runtime.torch_backend import build_torch_model, name_outputs

    model = build_torch_model(spec)
    args = example_inputs(spec)
    with torch.inference_mode():
        output_names = [name for name, _ in name_outputs(model(*args), spec.outputs)]
    input_names = [i.name for i in spec.inputs]
    dims: dict[str, object] = {}
    shapes = {}
    for inp in spec.inputs:
        axes = {}
        for axis, d in enumerate(inp.shape):
            if isinstance(d, str):
                axes[axis] = dims.setdefault(d, torch.export.Dim(d))
        shapes[inp.name] = axes or None
    forward = _forward_names(model, len(spec.inputs))
    dynamic_shapes = ({fn: shapes[i.name] for fn, i in zip(forward, spec.inputs, strict=True)} if forward
                      else tuple(shapes[i.name] for i in spec.inputs))
    try:
        with quiet_exporters():
            program = torch.onnx.export(model, args, None, dynamo=True, input_names=input_names,
                                        output_names=output_names, dynamic_shapes=dynamic_shapes, verbose=False)
            program.save(str(target))
        return ["exported from PyTorch with the dynamo exporter"]
    except Exception as exc:  # noqa: BLE001 - any exporter failure is a reason to try the other exporter
        first = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    dynamic_axes = {i.name: {a: d for a, d in enumerate(i.shape) if isinstance(d, str)} for i in spec.inputs}
    try:
        with quiet_exporters():
            torch.onnx.export(model, args, str(target), dynamo=False, input_names=input_names,
                              output_names=output_names, dynamic_axes={k: v for k, v in dynamic_axes.items() if v},
                              opset_version=17)
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"cannot export the PyTorch model to ONNX: dynamo exporter: {first}; TorchScript "
                           f"exporter: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return [f"exported from PyTorch with the TorchScript exporter (dynamo exporter failed: {first})"]


def _n_features(estimator, n_features: int | None) -> int:
    if n_features is not None:
        return int(n_features)
    for attr in ("n_features_in_", "n_features_"):
        value = getattr(estimator, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    num_feature = getattr(estimator, "num_feature", None)
    if callable(num_feature):
        return int(num_feature())
    raise InvalidInput("cannot tell how many features the estimator takes; pass n_features")


def _is_lightgbm(estimator) -> bool:
    return type(estimator).__module__.split(".")[0] == "lightgbm"


def estimator_to_onnx(estimator, target: Path, n_features: int | None = None) -> list[str]:
    """Convert a fitted scikit-learn estimator/pipeline or a LightGBM model (sklearn API or ``Booster``) to ONNX.

    The input is ``input [batch, n_features] float32``; classifiers return plain tensors (``label`` and
    ``probabilities``), not ONNX maps, so every runtime and JSON client can read them.
    """
    n = _n_features(estimator, n_features)
    if _is_lightgbm(estimator):
        try:
            from onnxmltools import convert_lightgbm
            from onnxmltools.convert.common.data_types import FloatTensorType
        except ImportError as exc:
            raise Unavailable(f"converting LightGBM models needs onnxmltools: {exc}") from exc
        with quiet_exporters():
            try:
                model = convert_lightgbm(estimator, initial_types=[("input", FloatTensorType([None, n]))],
                                         zipmap=False)
            except Exception as exc:  # noqa: BLE001 - converter errors are many and untyped
                raise InvalidInput(f"cannot convert the LightGBM model to ONNX: {type(exc).__name__}: {exc}") from None
        note = f"converted from LightGBM ({type(estimator).__name__}) with onnxmltools"
    else:
        try:
            from skl2onnx import to_onnx
            from skl2onnx.common.data_types import FloatTensorType
        except ImportError as exc:
            raise Unavailable(f"converting scikit-learn models needs skl2onnx: {exc}") from exc
        with quiet_exporters():
            try:
                model = to_onnx(estimator, initial_types=[("input", FloatTensorType([None, n]))],
                                options={"zipmap": False} if hasattr(estimator, "predict_proba") else None)
            except Exception as exc:  # noqa: BLE001
                raise InvalidInput(
                    f"cannot convert the scikit-learn model to ONNX: {type(exc).__name__}: {exc}") from None
        note = f"converted from scikit-learn ({type(estimator).__name__}) with skl2onnx"
    _name_outputs(model)
    target.write_bytes(model.SerializeToString())
    return [note]


def _name_outputs(model) -> None:
    """Give converter outputs stable names: ``label`` and ``probabilities`` (classifiers), ``variable`` stays."""
    renames = {"output_label": "label", "output_probability": "probabilities"}
    for output in model.graph.output:
        new = renames.get(output.name)
        if new is None:
            continue
        old = output.name
        for node in model.graph.node:
            node.output[:] = [new if o == old else o for o in node.output]
            node.input[:] = [new if i == old else i for i in node.input]
        output.name = new


def lightgbm_file_to_onnx(path: Path, target: Path) -> list[str]:
    """A LightGBM model saved with ``Booster.save_model`` (plain text: safe to read, unlike a pickle)."""
    try:
        import lightgbm
    except ImportError as exc:
        raise Unavailable(f"reading LightGBM model files needs lightgbm: {exc}") from exc
    with open(path, "rb") as handle:
        first = handle.readline().strip()
    if first != b"tree":  # LightGBM prints its own fatal error to stderr on a non-model file: check first
        raise InvalidInput(f"{path.name} is not a LightGBM model file (save one with Booster.save_model)")
    try:
        booster = lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as exc:
        raise InvalidInput(f"{path.name} is not a LightGBM model file: {str(exc).splitlines()[0]}") from None
    return estimator_to_onnx(booster, target)


def pickled_estimator_to_onnx(path: Path, target: Path) -> list[str]:
    """A scikit-learn/LightGBM estimator saved with pickle or joblib. The caller has confirmed it trusts the
    file (``--trust-pickle``): unpickling runs code, so this never happens on the server, only where the user
    runs the CLI or SDK."""
    try:
        import joblib

        estimator = joblib.load(path)
    except ImportError:
        import pickle

        with open(path, "rb") as handle:
            estimator = pickle.load(handle)  # noqa: S301 - explicitly trusted by the user
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None
    return estimator_to_onnx(estimator, target)
