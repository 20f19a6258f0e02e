"""What can be registered, and how it becomes files the runtimes serve: ONNX (with external weight files), OpenVINO
IR, a ModelSpec (PyTorch exported to ONNX; an ONNX/IR spec taken as it is, with its preprocessing and task),
scikit-learn/LightGBM estimators and LightGBM model files (converted to ONNX).

``prepare(path, workdir)`` runs where the user is (CLI, SDK): conversions and any trusted unpickling happen there.
The server only ever receives ONNX or OpenVINO files and reads their signatures itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput, NotFound

SERVED_FORMATS = ("onnx", "openvino")
# language models stored as their own files and served with transformers (modelyard.runtime.causal_lm): a Hugging
# Face folder (entry config.json), a GGUF file, or a peft LoRA adapter over another registered version
TEXT_FORMATS = ("hf", "gguf", "peft")
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


@dataclass(frozen=True)
class Prepared:
    """A model as files ready to upload.

    Attributes:
        files: stored name -> local path (stored names are relative POSIX paths, no ``..``).
        entry: the stored name of the file a runtime loads (``model.onnx`` or ``model.xml``).
        format: ``onnx`` or ``openvino`` (what is stored and served).
        source_format: what the user gave (``onnx``, ``openvino``, ``torch``, ``sklearn``, ``lightgbm``).
        preprocessing, task: from a ModelSpec, when it had them.
        notes: how the files were made (export and conversion notes), kept in the version's lineage.
        metadata: what the source format says about the model (an MLflow signature and flavour, a Hugging Face
            config), kept in the version's lineage beside the notes.
    """

    files: dict[str, Path]
    entry: str
    format: str
    source_format: str
    preprocessing: dict | None = None
    task: dict | None = None
    notes: list[str] = field(default_factory=list)
    source: str = ""
    metadata: dict | None = None


def check_stored_name(name: str) -> str:
    """A stored file name must be a plain relative path: no absolute paths, no ``..``, no backslashes."""
    pure = PurePosixPath(name)
    if (not name or "\\" in name or pure.is_absolute() or any(p in ("..", "") for p in pure.parts)
            or name != pure.as_posix() or len(name) > 400):
        raise InvalidInput(f"file name {name!r} must be a relative path without '..'")
    return name


def onnx_files(path: Path) -> dict[str, Path]:
    """``model.onnx`` plus the external weight files it references (each must lie beside or under it)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise InvalidInput(f"{path.name} is not a readable ONNX model: {type(exc).__name__}") from None
    files = {"model.onnx": path}
    base = path.parent.resolve()
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        if location is None:
            raise InvalidInput(f"{path.name}: tensor {tensor.name!r} uses external data without a location")
        check_stored_name(location)
        if location == "model.onnx":
            raise InvalidInput(f"{path.name}: external data file may not be called model.onnx")
        data_path = (base / location).resolve()
        if not data_path.is_relative_to(base):
            raise InvalidInput(f"{path.name}: external data {location!r} lies outside the model's folder")
        if not data_path.is_file():
            raise NotFound(f"{path.name}: external data file {location} is missing")
        files[location] = data_path
    return files


def check_onnx(path: Path) -> None:
    """Run the ONNX checker on the file (by path, so external weights are checked too)."""
    import onnx

    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name}: the file is empty (0 bytes); nothing to register")
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises ValidationError and plain Exceptions
        raise InvalidInput(f"{path.name} fails the ONNX checker: {str(exc).splitlines()[0]}") from None


def ir_files(xml: Path) -> dict[str, Path]:
    binary = xml.with_suffix(".bin")
    if not binary.is_file():
        raise NotFound(f"OpenVINO IR {xml.name} has no {binary.name} beside it")
    return {"model.xml": xml, "model.bin": binary}


def prepare(path: str | Path, workdir: Path, trust_pickle: bool = False) -> Prepared:
    """Make ``path`` registrable; conversions write into ``workdir``.

    Args:
        path: ``.onnx``, ``.xml`` (OpenVINO IR), a ModelSpec ``.yaml``/``.json``, a LightGBM model ``.txt``, or a
            pickled scikit-learn/LightGBM estimator (``.pkl``/``.joblib``, only with ``trust_pickle``).
        workdir: an empty scratch folder.
        trust_pickle: allow unpickling (runs code from the file: only for files you made yourself).
    """
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise NotFound(f"no such model file: {p}")
    if p.is_file() and p.stat().st_size == 0:
        raise InvalidInput(f"{p.name}: the file is empty (0 bytes); nothing to register")
    if p.is_dir():
        raise InvalidInput(f"{p.name} is a folder but not an MLflow model (no MLmodel file) or a Hugging Face model "
                           "(no config.json)")
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        check_onnx(p)
        return Prepared(onnx_files(p), "model.onnx", "onnx", "onnx", source=str(p))
    if suffix == ".xml":
        return Prepared(ir_files(p), "model.xml", "openvino", "openvino", source=str(p))
    if suffix in SPEC_SUFFIXES:
        return prepare_spec(p, workdir)
    if suffix == ".txt":
        from modelyard.registry.export import lightgbm_file_to_onnx

        target = workdir / "model.onnx"
        notes = lightgbm_file_to_onnx(p, target)
        return Prepared({"model.onnx": target}, "model.onnx", "onnx", "lightgbm", notes=notes, source=str(p))
    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise InvalidInput(
                f"{p.name} is a pickle: loading it runs code from the file. Pass --trust-pickle if you made it "
                "yourself, or save LightGBM models with Booster.save_model (.txt) instead"
            )
        from modelyard.registry.export import pickled_estimator_to_onnx

        target = workdir / "model.onnx"
        notes = pickled_estimator_to_onnx(p, target)
        source_format = "lightgbm" if "LightGBM" in notes[0] else "sklearn"
        return Prepared({"model.onnx": target}, "model.onnx", "onnx", source_format, notes=notes, source=str(p))
    raise InvalidInput(
        f"cannot register {p.name}: expected .onnx, .xml (OpenVINO IR), a ModelSpec (.yaml/.json), a LightGBM "
        ".txt model or a trusted .pkl/.joblib estimator"
    )


def prepare_spec(path: Path, workdir: Path) -> Prepared:
    """A ModelSpec: its ONNX/IR file as it is, or its PyTorch model exported to ONNX; keeps preprocessing/task."""
    from modelyard.runtime.spec import load_spec

    spec = load_spec(path)
    pre = spec.preprocessing.model_dump(mode="json") if spec.preprocessing else None
    task = spec.task.model_dump(mode="json") if spec.task else None
    if spec.onnx:
        onnx_path = spec.resolve(spec.onnx)
        check_onnx(onnx_path)
        return Prepared(onnx_files(onnx_path), "model.onnx", "onnx", "onnx", pre, task, source=str(path))
    if spec.openvino:
        return Prepared(ir_files(spec.resolve(spec.openvino)), "model.xml", "openvino", "openvino", pre, task,
                        source=str(path))
    from modelyard.registry.export import torch_to_onnx

    target = workdir / "model.onnx"
    notes = torch_to_onnx(spec, target)
    notes.append(f"entrypoint {spec.entrypoint} kwargs {spec.kwargs}"
                 + (f" weights sha256:{spec.content_hash()[:12]}" if spec.weights else ""))
    return Prepared({"model.onnx": target}, "model.onnx", "onnx", "torch", pre, task, notes=notes, source=str(path))


def prepare_estimator(estimator, workdir: Path, n_features: int | None = None) -> Prepared:
    """An in-memory scikit-learn/LightGBM estimator (SDK), converted to ONNX."""
    from modelyard.registry.export import estimator_to_onnx

    target = workdir / "model.onnx"
    notes = estimator_to_onnx(estimator, target, n_features)
    source_format = "lightgbm" if "LightGBM" in notes[0] else "sklearn"
    return Prepared({"model.onnx": target}, "model.onnx", "onnx", source_format, notes=notes,
                    source=type(estimator).__name__)
