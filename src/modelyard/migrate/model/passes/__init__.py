"""Conversion passes: each does one thing to a model artifact, declares a typed config, verifies its output loads
and runs, and is cached by the hash of (input artifact, pass name, config).

The contract (``Pass``, ``PassConfig``, caching, verification) is in ``base.py``; passes live in ``onnx.py``
(torch -> ONNX, simplify, fp16, INT8), ``openvino.py`` (ONNX -> IR, bf16 hint, NNCF INT8), ``torch_export.py``
(torch.export) and ``keep_float.py`` (INT8 keeping chosen nodes in float); ``PASSES`` names every one of them.
``convert`` chains them into a target format; ``ConvertSpec`` (``specs.py``) is its options, declared once for the
function (``convert_model``), the CLI (``modelyard migrate convert``) and the ``migrate.convert`` job kind.

Example::

    result = convert(load_spec("model.yaml"), "onnx-fp16", out_dir=Path("out"), cache_dir=Path(".cache"))
    print(result)                      # every step, cached or not, with its verification
    result.artifact.path               # out/model.fp16.onnx
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.passes.base import Pass, PassResult
from modelyard.migrate.model.specs import TARGETS, ConvertSpec
from modelyard.runtime.graph_layers import SIDECAR_SUFFIX
from modelyard.runtime.spec import Artifact, ModelSpec

# -- registry and pipelines --------------------------------------------------------------------------------------

# pass name -> "module:attr" of its Pass class
PASSES: dict[str, str] = {
    "torch-to-onnx": "modelyard.migrate.model.passes.onnx:TorchToOnnx",
    "onnx-simplify": "modelyard.migrate.model.passes.onnx:OnnxSimplify",
    "onnx-fp16": "modelyard.migrate.model.passes.onnx:OnnxFp16",
    "int8-dynamic": "modelyard.migrate.model.passes.onnx:Int8Dynamic",
    "int8-static": "modelyard.migrate.model.passes.onnx:Int8Static",
    "onnx-to-openvino": "modelyard.migrate.model.passes.openvino:OnnxToOpenVino",
    "openvino-bf16-hint": "modelyard.migrate.model.passes.openvino:Bf16Hint",
    "nncf-int8": "modelyard.migrate.model.passes.openvino:NncfInt8",
    "torch-export": "modelyard.migrate.model.passes.torch_export:TorchExport",
    # the optimiser's accuracy fallback: INT8 with chosen nodes kept in float (no target chain uses them)
    "int8-static-keep-float": "modelyard.migrate.model.passes.keep_float:Int8StaticKeepFloat",
    "nncf-int8-keep-float": "modelyard.migrate.model.passes.keep_float:NncfInt8KeepFloat",
}

# target formats (``TARGETS``: format -> pass chain) are declared with ``ConvertSpec`` in ``specs.py``

# a model file's suffix -> the artifact format written under it; an ``out`` path ending in one is that file
MODEL_FILE_SUFFIXES: dict[str, str] = {".onnx": "onnx", ".xml": "openvino", ".pt2": "torch_export"}


def get_pass(name: str) -> Pass:
    target = PASSES.get(name)
    if target is None:
        raise InvalidInput(f"unknown pass {name!r}; known passes: {', '.join(PASSES)}")
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)()


@dataclass(frozen=True)
class ConvertResult:
    """A chain of pass runs ending in ``artifact``."""

    target: str
    artifact: Artifact
    steps: tuple[PassResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "schema": "modelyard.convert/1",
            "target": self.target,
            "artifact": {"format": self.artifact.format, "path": str(self.artifact.path)},
            "steps": [s.to_dict() for s in self.steps],
        }

    def __str__(self) -> str:
        lines = [f"{self.target}: {self.artifact.path}"] + [f"  {s}" for s in self.steps]
        return "\n".join(lines)

    def __bool__(self) -> bool:
        return all(self.steps)


def plan(spec: ModelSpec, target: str, opset: int | None = None,
         calibration: str | None = None) -> list[tuple[str, dict]]:
    """The pass chain turning ``spec``'s source into ``target``, with configs."""
    if target not in TARGETS:
        raise InvalidInput(f"unknown target format {target!r}; choose one of {', '.join(TARGETS)}")
    source = spec.source_format
    if target == "torch-export":
        if source != "torch":
            raise InvalidInput("torch-export needs a spec with an 'entrypoint' (a PyTorch model)")
        return [("torch-export", {})]
    steps: list[tuple[str, dict]] = []
    if source == "torch":
        steps.append(("torch-to-onnx", {"opset": opset} if opset else {}))
    elif source == "openvino":
        if target != "openvino-bf16":
            raise InvalidInput(f"an OpenVINO IR source can only become openvino-bf16, not {target}")
        return [("openvino-bf16-hint", {})]
    for name, config in TARGETS[target]:
        config = dict(config)
        if name in ("int8-static", "nncf-int8") and calibration:
            config["calibration"] = calibration
        steps.append((name, config))
    return steps


def convert(
    spec: ModelSpec,
    target: str,
    out_dir: Path,
    cache_dir: Path | None = None,
    opset: int | None = None,
    calibration: str | None = None,
    progress: Any = None,
) -> ConvertResult:
    """Convert ``spec``'s model to ``target`` (see ``TARGETS``), each step verified; outputs land in ``out_dir``.

    Args:
        spec: the model.
        target: a key of ``TARGETS`` (``onnx``, ``onnx-fp16``, ``openvino``, ...).
        out_dir: the folder every step's output is written to; or a file path ending in ``.onnx``, ``.xml`` or
            ``.pt2``: the final model is written to exactly that file (with its ``.bin`` and layer map), the
            intermediate outputs are not kept (the pass cache has them).
        cache_dir: pass cache folder (default: none).
        opset: ONNX opset for torch -> ONNX (default: the exporter's).
        calibration: data for INT8 static calibration (``.npz``/``.npy`` folder/images; default random feeds).
        progress: optional ``callable(fraction, message)``.
    """
    out_dir = Path(out_dir)
    if out_dir.suffix.lower() in MODEL_FILE_SUFFIXES:
        return _convert_to_file(spec, target, out_dir, cache_dir, opset, calibration, progress)
    steps = plan(spec, target, opset, calibration)
    artifact = spec.source()
    results: list[PassResult] = []
    for index, (name, config) in enumerate(steps):
        if progress:
            progress(index / len(steps), f"running {name}")
        result = get_pass(name).run(artifact, config, out_dir, cache_dir)
        results.append(result)
        artifact = result.artifact
    if progress:
        progress(1.0, "done")
    return ConvertResult(target, artifact, tuple(results))


def _target_format(target: str) -> str:
    if target not in TARGETS:
        raise InvalidInput(f"unknown target format {target!r}; choose one of {', '.join(TARGETS)}")
    return "torch_export" if target == "torch-export" else "openvino" if target.startswith("openvino") else "onnx"


def _convert_to_file(spec: ModelSpec, target: str, out_file: Path, cache_dir: Path | None, opset: int | None,
                     calibration: str | None, progress: Any) -> ConvertResult:
    """``convert`` into a scratch folder beside ``out_file``, then publish the final model under that name."""
    fmt = _target_format(target)
    suffix = next(s for s, f in MODEL_FILE_SUFFIXES.items() if f == fmt)
    if out_file.suffix.lower() != suffix:
        raise InvalidInput(f"-o {out_file.name}: --to {target} writes a {suffix} file")
    out_file = out_file.expanduser().resolve()
    if out_file.is_dir():
        raise InvalidInput(f"-o {out_file}: a folder is in the way of the model file")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=f".{out_file.name}.") as scratch:
        result = convert(spec, target, Path(scratch), cache_dir, opset, calibration, progress)
        final = result.artifact.path
        pairs = [(final, out_file)]
        if fmt == "openvino":
            pairs.append((final.with_suffix(".bin"), out_file.with_suffix(".bin")))
        pairs.append((final.with_name(final.name + SIDECAR_SUFFIX), out_file.with_name(out_file.name + SIDECAR_SUFFIX)))
        for source, target_path in pairs:
            if source.is_file():
                part = target_path.with_name(f".{target_path.name}.part")
                shutil.copy2(source, part)
                part.replace(target_path)  # atomic: a reader sees the old file or the new one
    artifact = Artifact(result.artifact.format, out_file, spec)
    steps = result.steps[:-1] + (replace(result.steps[-1], artifact=artifact),) if result.steps else ()
    return ConvertResult(target, artifact, steps)


def convert_model(
    spec: ModelSpec, options: ConvertSpec, out: Path, cache_dir: Path | None = None, progress: Any = None,
) -> ConvertResult:
    """Convert ``spec``'s model as ``options`` (``ConvertSpec``: the one declaration of the target format, opset
    and calibration data that the CLI and the ``migrate.convert`` job kind share) say; ``out`` is a folder or a
    model file path, as in ``convert``."""
    return convert(spec, options.to, out, cache_dir=cache_dir, opset=options.opset, calibration=options.calib,
                   progress=progress)
