"""Conversion passes: each does one thing to a model artifact, declares a typed config, verifies its output loads
and runs, and is cached by the hash of (input artifact, pass name, config).

Passes live in ``onnx.py`` (torch -> ONNX, simplify, fp16, INT8), ``openvino.py``
(ONNX -> IR, bf16 hint, NNCF INT8) and ``torch_export.py`` (torch.export); ``PASSES`` names them.
``convert`` chains them into a target format.

Example::

    result = convert(load_spec("model.yaml"), "onnx-fp16", out_dir=Path("out"), cache_dir=Path(".cache"))
    print(result)                      # every step, cached or not, with its verification
    result.artifact.path               # out/model.fp16.onnx
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.runtime.graph_layers import SIDECAR_SUFFIX
from modelyard.runtime.spec import Artifact, ModelSpec

_MANIFEST = "modelyard-pass.json"


class PassConfig(BaseModel):
    """Base of every pass config: strict, JSON round-trippable, hashed into the cache key."""

    model_config = ConfigDict(extra="forbid")


class PassFailed(ModelyardError):
    """A pass ran but its output did not load or run; the message says which pass and why."""

    code = "pass_failed"
    status = 422


@dataclass(frozen=True)
class PassResult:
    """One pass run: what went in, what came out, whether it came from the cache, how it was verified."""

    pass_name: str
    config: dict
    input: str
    artifact: Artifact
    cache_key: str
    cached: bool
    seconds: float
    verification: dict
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "pass": self.pass_name,
            "config": self.config,
            "input": self.input,
            "output": {"format": self.artifact.format, "path": str(self.artifact.path)},
            "cache_key": self.cache_key,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "verification": self.verification,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        state = "cached" if self.cached else f"{self.seconds:.1f}s"
        return f"{self.pass_name} -> {self.artifact.path} ({state}, verified on {self.verification.get('backend')})"

    def __bool__(self) -> bool:
        return bool(self.verification.get("ok"))


class Pass(ABC):
    """Base class: ``run`` validates, consults the cache, calls ``_run_impl`` in a scratch folder, verifies the
    output and publishes it atomically. Subclasses set ``name``, ``config_model``, ``input_formats``,
    ``output_format`` and fill ``_run_impl`` (and ``_cache_extra`` when the result depends on more than config)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_model: ClassVar[type[PassConfig]] = PassConfig
    input_formats: ClassVar[tuple[str, ...]] = ()
    output_format: ClassVar[str] = ""
    suffix: ClassVar[str] = ""

    def validate_config(self, config: PassConfig | dict | None) -> PassConfig:
        if isinstance(config, self.config_model):
            return config
        try:
            return self.config_model.model_validate(config or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"pass {self.name}: config.{where}: {first['msg']}") from None

    def cache_key(self, artifact: Artifact, config: PassConfig) -> str:
        digest = hashlib.sha256()
        digest.update(artifact.content_hash().encode())
        digest.update(self.name.encode())
        digest.update(json.dumps(config.model_dump(mode="json"), sort_keys=True).encode())
        digest.update(self._cache_extra(artifact, config).encode())
        return digest.hexdigest()

    def run(
        self,
        artifact: Artifact,
        config: PassConfig | dict | None,
        out_dir: Path,
        cache_dir: Path | None = None,
    ) -> PassResult:
        """Run the pass on ``artifact`` writing into ``out_dir``; reuse a cached output when one matches.

        Args:
            artifact: the input model.
            config: a ``config_model`` instance or a dict for it; ``None`` for defaults.
            out_dir: where the output files are published.
            cache_dir: optional folder of earlier results, keyed by the cache key.

        Raises:
            InvalidInput: the artifact's format does not fit the pass, or the config is invalid.
            PassFailed: the pass produced something that does not load and run.
        """
        cfg = self.validate_config(config)
        if artifact.format not in self.input_formats:
            raise InvalidInput(
                f"pass {self.name} takes {' or '.join(self.input_formats)} models, got {artifact.format}"
            )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        key = self.cache_key(artifact, cfg)
        stem = _stem(artifact)
        entry = Path(cache_dir) / f"{self.name}-{key[:24]}" if cache_dir else None
        started = time.perf_counter()
        if entry is not None and (entry / _MANIFEST).is_file():
            manifest = json.loads((entry / _MANIFEST).read_text())
            if _intact(entry, manifest):
                main = _publish(entry, out_dir, manifest["files"], copy=True)[manifest["main"]]
                output = Artifact(self.output_format, main, artifact.spec)
                return PassResult(
                    self.name, cfg.model_dump(mode="json"), artifact.describe(), output, key, True,
                    time.perf_counter() - started, manifest["verification"], tuple(manifest.get("notes", [])),
                )
        scratch = out_dir / f".tmp-{self.name}-{key[:12]}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            notes: list[str] = []
            main = self._run_impl(artifact, cfg, scratch, f"{stem}{self.suffix}", notes)
            produced = Artifact(self.output_format, main, artifact.spec)
            verification = verify_artifact(produced)
            if not verification["ok"]:
                raise PassFailed(f"pass {self.name}: output {main.name} does not run: {verification['error']}")
            files = sorted(p.name for p in scratch.iterdir() if p.is_file())
            manifest = {
                "pass": self.name, "key": key, "main": main.name, "files": {f: _sha256(scratch / f) for f in files},
                "verification": verification, "notes": notes,
            }
            if entry is not None:
                _store(scratch, entry, manifest)
            published = _publish(scratch, out_dir, manifest["files"], copy=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        output = Artifact(self.output_format, published[main.name], artifact.spec)
        return PassResult(
            self.name, cfg.model_dump(mode="json"), artifact.describe(), output, key, False,
            time.perf_counter() - started, verification, tuple(notes),
        )

    def _cache_extra(self, artifact: Artifact, config: PassConfig) -> str:
        return ""

    @abstractmethod
    def _run_impl(self, artifact: Artifact, config: PassConfig, out_dir: Path, stem: str, notes: list[str]) -> Path:
        """Write the output (named ``stem``, plus any side files) into ``out_dir``; return the main file.
        Append anything a user should know (fallbacks, skipped steps) to ``notes``."""


def _stem(artifact: Artifact) -> str:
    if artifact.path is None:
        return artifact.spec.name or "model"
    name = artifact.path.name
    for suffix in (".onnx", ".xml", ".pt2"):
        name = name.removesuffix(suffix)
    return name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _intact(entry: Path, manifest: dict) -> bool:
    try:
        return all(_sha256(entry / name) == digest for name, digest in manifest["files"].items())
    except (OSError, KeyError, TypeError):
        return False


def _store(scratch: Path, entry: Path, manifest: dict) -> None:
    """Copy the scratch outputs into the cache atomically (a temp folder renamed into place)."""
    tmp = entry.with_name(entry.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in manifest["files"]:
        shutil.copy2(scratch / name, tmp / name)
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(entry, ignore_errors=True)
    tmp.replace(entry)


def _publish(source: Path, out_dir: Path, files: dict[str, str], copy: bool) -> dict[str, Path]:
    """Place each file in ``out_dir`` via a temp name and an atomic rename."""
    placed = {}
    for name in files:
        target = out_dir / name
        tmp = out_dir / f".{name}.part"
        if copy:
            shutil.copy2(source / name, tmp)
        else:
            shutil.move(str(source / name), tmp)
        tmp.replace(target)
        placed[name] = target
    return placed


def verify_artifact(artifact: Artifact) -> dict:
    """Load ``artifact`` on a backend that runs its format here and run it once on a random feed.

    Returns:
        ``{"ok", "backend", "outputs": {name: shape}, "error"}``.
    """
    from modelyard.runtime.feeds import random_feeds

    feeds = next(random_feeds(artifact.spec, 1, seed=1234))
    try:
        if artifact.format == "torch_export":
            from modelyard.migrate.model.passes.torch_export import run_exported

            outputs = run_exported(artifact.path, artifact.spec, feeds)
            backend = "torch:cpu (torch.export)"
        else:
            from modelyard.runtime.registry import get_backend

            backend = {"onnx": "onnxruntime:cpu", "openvino": "openvino:cpu"}[artifact.format]
            runner = get_backend(backend).load(artifact)
            outputs = runner.infer({k: v for k, v in feeds.items() if k in {i.name for i in runner.inputs}})
    except ModelyardError as exc:
        return {"ok": False, "backend": artifact.format, "outputs": {}, "error": str(exc)}
    return {"ok": True, "backend": backend, "outputs": {k: list(v.shape) for k, v in outputs.items()}, "error": None}


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
}

# target format -> the passes after the source has become ONNX (``torch-to-onnx`` is prepended for torch specs)
TARGETS: dict[str, list[tuple[str, dict]]] = {
    "onnx": [],
    "onnx-simplified": [("onnx-simplify", {})],
    "onnx-fp16": [("onnx-fp16", {})],
    "onnx-int8": [("int8-dynamic", {})],
    "onnx-int8-static": [("int8-static", {})],
    "openvino": [("onnx-to-openvino", {})],
    "openvino-fp16": [("onnx-to-openvino", {"compress_to_fp16": True})],
    "openvino-bf16": [("onnx-to-openvino", {}), ("openvino-bf16-hint", {})],
    "openvino-int8": [("nncf-int8", {}), ("onnx-to-openvino", {})],
    "torch-export": [],
}


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


def plan(spec: ModelSpec, target: str, opset: int | None = None, calibration: str | None = None) -> list[tuple[str, dict]]:
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
        out_dir: where every step's output is written.
        cache_dir: pass cache folder (default: none).
        opset: ONNX opset for torch -> ONNX (default: the exporter's).
        calibration: data for INT8 static calibration (``.npz``/``.npy`` folder/images; default random feeds).
        progress: optional ``callable(fraction, message)``.
    """
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


def copy_layer_map(source: Path | None, target: Path) -> None:
    """Carry a layer map sidecar from an input model to an output model (tensor names survive most passes)."""
    if source is None:
        return
    sidecar = source.with_name(source.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        shutil.copy2(sidecar, target.with_name(target.name + SIDECAR_SUFFIX))
