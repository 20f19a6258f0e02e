"""MLflow model directories in and out of the registry, without MLflow installed.

In: a folder with an ``MLmodel`` file and one of the flavours

- ``onnx``: the ONNX file, as it is;
- ``sklearn``: an estimator saved with **skops** (MLflow 3's default; a data format, loaded only when every type in
  it is a scikit-learn, NumPy or SciPy class) or with pickle/cloudpickle (runs code: only with ``trust_pickle``),
  converted to ONNX like any estimator;
- ``pytorch``: a ``torch.export`` program (``data/model.pt2``, MLflow 3's default: a graph and tensors, no code) or a
  pickled module (older MLflow: only with ``trust_pickle``), exported to ONNX.

The MLflow signature (tensor or column specs), the flavour's metadata, the run id and the model uuid are kept in the
version's lineage (``source.mlflow``).

Out: :func:`write_mlflow_model` writes a registered ONNX version as an MLflow model directory with the ``onnx`` and
``python_function`` flavours that ``mlflow.onnx.load_model`` and ``mlflow.pyfunc.load_model`` read.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from modelyard.core.errors import InvalidInput, NotFound

MLMODEL = "MLmodel"
FLAVOURS = ("onnx", "sklearn", "pytorch")
# skops refuses any type it is not told to trust; beyond its defaults we trust classes from these packages (estimators
# and their data, e.g. sklearn.tree._tree.Tree), never their functions: skops calls a trusted name with the file's
# arguments (builtins.eval runs code, numpy.load unpickles), and a user-defined class or function stays refused
_SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "collections.", "lightgbm.")


def _skops_trustable(type_name: str) -> bool:
    """A class under :data:`_SKOPS_TRUSTED_PREFIXES` that touches no files (``numpy.memmap`` opens its argument)."""
    import importlib
    import inspect

    if not type_name.startswith(_SKOPS_TRUSTED_PREFIXES):
        return False
    module, _, name = type_name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return inspect.isclass(found) and not issubclass(found, np.memmap)


def is_mlflow_model(path: Path) -> bool:
    return path.is_dir() and (path / MLMODEL).is_file()


def read_mlmodel(folder: Path) -> dict:
    try:
        data = yaml.safe_load((folder / MLMODEL).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{folder.name}/MLmodel is not readable YAML: {type(exc).__name__}") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise InvalidInput(f"{folder.name}/MLmodel has no 'flavors' mapping")
    return data


def _signature(mlmodel: dict) -> dict | None:
    """The signature's inputs/outputs as parsed JSON lists (MLflow stores each as a JSON string)."""
    signature = mlmodel.get("signature")
    if not isinstance(signature, dict):
        return None
    parsed = {}
    for key in ("inputs", "outputs", "params"):
        value = signature.get(key)
        if isinstance(value, str):
            try:
                parsed[key] = json.loads(value)
            except json.JSONDecodeError:
                raise InvalidInput(f"MLmodel signature {key} is not JSON") from None
        elif value is not None:
            parsed[key] = value
    return parsed


def _inside(folder: Path, name: object, what: str) -> Path:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{folder.name}/MLmodel: the {what} flavour names no file")
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise InvalidInput(f"{folder.name}/MLmodel: {name!r} lies outside the model folder")
    if not path.exists():
        raise NotFound(f"{folder.name}: {name} (named by the {what} flavour) is missing")
    return path


def _n_features(signature: dict | None) -> int | None:
    """The feature count of a 2-D tensor input or of a column-based input."""
    inputs = (signature or {}).get("inputs") or []
    if len(inputs) == 1 and inputs[0].get("type") == "tensor":
        shape = inputs[0].get("tensor-spec", {}).get("shape") or []
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0 else None
    if inputs and all(i.get("type") in ("double", "float", "long", "integer", "boolean") for i in inputs):
        return len(inputs)
    return None


def _example_input(folder: Path, mlmodel: dict, signature: dict | None):
    """A float32 example batch for tracing: the saved input example, else zeros shaped by the tensor signature."""
    info = mlmodel.get("saved_input_example_info") or {}
    if isinstance(info.get("artifact_path"), str):
        try:
            example = json.loads(_inside(folder, info["artifact_path"], "input example").read_text())
            if isinstance(example, dict):  # {"inputs": [...]} / {"data": [...]} forms
                example = example.get("inputs", example.get("data", example))
            return np.asarray(example, dtype=np.float32)
        except (ValueError, TypeError, OSError):
            pass
    inputs = (signature or {}).get("inputs") or []
    if len(inputs) == 1 and inputs[0].get("type") == "tensor":
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inputs[0]["tensor-spec"].get("shape", [])]
        return np.zeros(shape, dtype=np.float32)
    raise InvalidInput(f"{folder.name}: a PyTorch MLflow model needs a tensor signature or an input example to "
                       "export it to ONNX")


def _load_skops(path: Path):
    from modelyard.core.extras import require

    sio = require("skops.io")
    untrusted = sio.get_untrusted_types(file=str(path))
    refused = [t for t in untrusted if not _skops_trustable(t)]
    if refused:
        named = ", ".join(refused[:3]) + (", ..." if len(refused) > 3 else "")
        raise InvalidInput(f"{path.name} holds types that are not scikit-learn, NumPy or SciPy classes ({named}); "
                           "refusing to load them")
    return sio.load(str(path), trusted=untrusted)


def _load_pickle(path: Path):
    """A pickled estimator the user has said they trust (``--trust-pickle``): unpickling runs code, so this runs
    only where the user runs the CLI or SDK, never on the server."""
    import pickle

    try:
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - explicitly trusted by the user
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None


def _example_rows(folder: Path, mlmodel: dict, signature: dict | None, n_features: int):
    """Rows to check the conversion on: the saved input example, else seeded standard-normal rows."""
    try:
        example = _example_input(folder, mlmodel, signature)
        if example.ndim == 2:
            return example
    except InvalidInput:
        pass
    if not n_features:
        raise InvalidInput(f"{folder.name}: cannot tell the model's feature count (no tensor signature or input "
                           "example)")
    return np.random.default_rng(0).standard_normal((16, n_features)).astype(np.float32)


def _verify(folder: Path, onnx_path: Path, example, reference) -> str:
    """Run the converted model on ``example`` and refuse it unless it answers as the original did (the output that
    matches the reference's shape: probabilities for a classifier, the prediction otherwise)."""
    from modelyard.registry.signature import read_signature
    from modelyard.runtime.registry import get_backend
    from modelyard.runtime.spec import Artifact, parse_spec

    signature = read_signature(onnx_path, "onnx")
    inputs = [{"name": t.name, "dtype": t.dtype,
               "shape": [d if isinstance(d, int) else f"d{i}" for i, d in enumerate(t.shape)]}
              for t in signature.inputs]
    spec = parse_spec({"onnx": str(onnx_path), "inputs": inputs})
    runner = get_backend("onnxruntime:cpu").load(Artifact("onnx", onnx_path, spec))
    try:
        outputs = list(runner.infer({signature.inputs[0].name: example.astype(np.float32)}).values())
    finally:
        close = getattr(runner, "close", None)
        if close:
            close()
    candidates = [np.asarray(o, dtype=np.float64) for o in outputs if np.shape(o) == reference.shape]
    if not candidates:
        raise InvalidInput(f"{folder.name}: the ONNX model's outputs {[np.shape(o) for o in outputs]} do not match "
                           f"the original's {reference.shape}; not registered")
    error = min(float(np.max(np.abs(c - reference))) if c.size else 0.0 for c in candidates)
    scale = max(1.0, float(np.max(np.abs(reference))) if reference.size else 1.0)
    if not error <= 1e-4 * scale:
        raise InvalidInput(f"{folder.name}: the ONNX conversion answers differently from the original (max abs "
                           f"error {error:.3g} on {len(example)} rows); not registered")
    return f"verified against the original on {len(example)} rows: max abs error {error:.2g}"


def _sklearn_to_onnx(folder: Path, mlmodel: dict, flavour: dict, signature: dict | None, target: Path,
                     trust_pickle: bool) -> list:
    from modelyard.registry.export import estimator_to_onnx

    path = _inside(folder, flavour.get("pickled_model"), "sklearn")
    fmt = flavour.get("serialization_format", "cloudpickle")
    if fmt == "skops":
        estimator = _load_skops(path)
    elif fmt in ("pickle", "cloudpickle"):
        if not trust_pickle:
            raise InvalidInput(f"{folder.name}: the sklearn flavour is a {fmt} file: loading it runs code from the "
                               "file. Pass --trust-pickle if you made it yourself, or save it with MLflow 3's default "
                               "serialization_format='skops'")
        estimator = _load_pickle(path)
    else:
        raise InvalidInput(f"{folder.name}: unknown sklearn serialization_format {fmt!r}")
    notes = estimator_to_onnx(estimator, target, _n_features(signature))
    n_features = _n_features(signature) or getattr(estimator, "n_features_in_", 0)
    example = _example_rows(folder, mlmodel, signature, n_features)
    predict = estimator.predict_proba if hasattr(estimator, "predict_proba") else estimator.predict
    reference = predict(example)
    verified = _verify(folder, target, example, np.asarray(reference, dtype=np.float64))
    return [f"MLflow sklearn flavour ({fmt}): " + notes[0], verified]


def _load_program(program: Path, trust_pickle: bool):
    """``torch.export.load`` with the program's pickles (sample inputs, constants) held to tensors unless trusted:
    torch retries a failed tensors-only load with a full unpickle, which runs code from the file."""
    import os

    import torch

    if trust_pickle:
        return torch.export.load(str(program))
    # NOTE: torch reads these per torch.load call, so they hold process-wide for the length of this load
    names = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        return torch.export.load(str(program))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _pytorch_to_onnx(folder: Path, mlmodel: dict, flavour: dict, signature: dict | None, target: Path,
                     trust_pickle: bool) -> list:
    import torch

    from modelyard.registry.export import quiet_exporters

    data = _inside(folder, flavour.get("model_data", "data"), "pytorch")
    example = torch.from_numpy(_example_input(folder, mlmodel, signature))
    program = data / "model.pt2" if data.is_dir() else data
    if program.suffix == ".pt2" and program.is_file():
        try:
            model = _load_program(program, trust_pickle).module()
        except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds
            import pickle

            hint = (" (it holds pickled objects beyond tensors: pass --trust-pickle if you made it yourself)"
                    if isinstance(exc, pickle.UnpicklingError) else "")
            raise InvalidInput(f"{folder.name}: cannot read {program.name}: {type(exc).__name__}{hint}") from None
        note = "MLflow pytorch flavour (torch.export program)"
    else:
        pickled = data / "model.pth" if data.is_dir() else data
        if not pickled.is_file():
            raise NotFound(f"{folder.name}: the pytorch flavour's model file is missing under {data.name}")
        if not trust_pickle:
            raise InvalidInput(f"{folder.name}: the pytorch flavour is a pickled module: loading it runs code from the "
                               "file. Pass --trust-pickle if you made it yourself, or save it with MLflow 3 "
                               "(torch.export, the default)")
        model = torch.load(pickled, weights_only=False)  # noqa: S614 - explicitly trusted by the user
        note = "MLflow pytorch flavour (pickled module, trusted)"
    dynamic = {0: torch.export.Dim("batch")} if example.ndim >= 1 else None
    try:
        with quiet_exporters():
            exported = torch.onnx.export(model, (example,), None, dynamo=True, input_names=["input"],
                                         output_names=["output"], dynamic_shapes=({0: dynamic[0]},) if dynamic
                                         else None, verbose=False)
            exported.save(str(target))
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(f"{folder.name}: cannot export the PyTorch model to ONNX: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    with torch.no_grad():
        reference = model(example)
    reference = reference[0] if isinstance(reference, tuple | list) else reference
    verified = _verify(folder, target, example.numpy(), reference.detach().double().numpy())
    return [note + ", exported to ONNX with the dynamo exporter", verified]


def prepare_mlflow(folder: Path, workdir: Path, trust_pickle: bool = False):
    """An MLflow model directory as a :class:`~modelyard.registry.formats.Prepared` ONNX model."""
    from modelyard.registry.formats import Prepared, check_onnx, onnx_files

    mlmodel = read_mlmodel(folder)
    flavours = mlmodel["flavors"]
    signature = _signature(mlmodel)
    kept = {"flavors": {name: {k: v for k, v in spec.items() if k != "env"} if isinstance(spec, dict) else spec
                        for name, spec in flavours.items()},
            "signature": signature}
    for key in ("run_id", "model_uuid", "mlflow_version", "utc_time_created", "artifact_path", "model_id"):
        if mlmodel.get(key) is not None:
            kept[key] = str(mlmodel[key])
    name = next((f for f in FLAVOURS if f in flavours), None)
    if name is None:
        raise InvalidInput(f"{folder.name}: MLflow flavours {', '.join(sorted(flavours)) or '(none)'}: Modelyard "
                           f"registers {', '.join(FLAVOURS)}")
    flavour = flavours[name] if isinstance(flavours[name], dict) else {}
    target = workdir / "model.onnx"
    if name == "onnx":
        path = _inside(folder, flavour.get("data"), "onnx")
        check_onnx(path)
        return Prepared(onnx_files(path), "model.onnx", "onnx", "mlflow-onnx", notes=["MLflow onnx flavour"],
                        source=str(folder), metadata={"mlflow": kept})
    if name == "sklearn":
        notes = _sklearn_to_onnx(folder, mlmodel, flavour, signature, target, trust_pickle)
    else:
        notes = _pytorch_to_onnx(folder, mlmodel, flavour, signature, target, trust_pickle)
    return Prepared({"model.onnx": target}, "model.onnx", "onnx", f"mlflow-{name}", notes=notes, source=str(folder),
                    metadata={"mlflow": kept})


_MLFLOW_DTYPES = {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "bool", "float16"}


def _tensor_specs(tensors: list[dict]) -> str:
    specs = []
    for tensor in tensors:
        dtype = tensor["dtype"] if tensor["dtype"] in _MLFLOW_DTYPES else "float32"
        shape = [d if isinstance(d, int) else -1 for d in tensor["shape"]]
        specs.append({"name": tensor["name"], "type": "tensor", "tensor-spec": {"dtype": dtype, "shape": shape}})
    return json.dumps(specs)


def write_mlflow_model(version: dict, entry_file: Path, dest: Path) -> Path:
    """Write a downloaded ONNX version (``entry_file`` with its external data beside it) as an MLflow model
    directory at ``dest`` (which must not exist or be empty); returns ``dest``."""
    if version.get("format") != "onnx":
        raise InvalidInput(f"{version.get('ref')}: only ONNX versions export as MLflow models (this one is "
                           f"{version.get('format')})")
    if dest.exists() and any(dest.iterdir()):
        raise InvalidInput(f"{dest} is not empty")
    shutil.copytree(entry_file.parent, dest, dirs_exist_ok=True)
    import onnx

    signature = version.get("signature") or {}
    mlmodel = {
        "artifact_path": version.get("name", "model"),
        "flavors": {
            "onnx": {"code": None, "data": entry_file.name, "onnx_version": onnx.__version__,
                     "providers": ["CPUExecutionProvider"]},
            "python_function": {"data": entry_file.name, "loader_module": "mlflow.onnx",
                                "python_version": ".".join(map(str, __import__("sys").version_info[:3]))},
        },
        "model_uuid": version.get("id", ""),
        "utc_time_created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        "metadata": {"modelyard_ref": version.get("ref"), "modelyard_uri": version.get("uri")},
    }
    if signature.get("inputs") and signature.get("outputs"):
        mlmodel["signature"] = {"inputs": _tensor_specs(signature["inputs"]),
                                "outputs": _tensor_specs(signature["outputs"]), "params": None}
    (dest / MLMODEL).write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    (dest / "requirements.txt").write_text(f"onnx=={onnx.__version__}\nonnxruntime\n", encoding="utf-8")
    return dest
