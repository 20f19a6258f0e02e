"""The pass contract: a typed config, a cached run in a scratch folder, verification that the output loads and
runs, atomic publication. Every pass subclasses ``Pass``; ``modelyard.migrate.model.passes.PASSES`` names them."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import ValidationError

from modelyard.core.errors import InvalidInput, ModelyardError
from modelyard.migrate.action_spec import ActionSpec
from modelyard.runtime.graph_layers import SIDECAR_SUFFIX
from modelyard.runtime.spec import Artifact

_MANIFEST = "modelyard-pass.json"


class PassConfig(ActionSpec):
    """Base of every pass config: strict, frozen, JSON round-trippable; its ``content_hash()`` is the pass cache's
    key (with the pass name and the input artifact's digest)."""


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
        """The config's ``cache_key`` over the pass name, the input artifact's digest and ``_cache_extra``."""
        return config.cache_key(self.name, artifact.content_hash(), self._cache_extra(artifact, config))

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
            verification = self.verify(produced)
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

    def verify(self, artifact: Artifact) -> dict:
        """Load the pass's output and run it once on a random feed.

        Returns:
            ``{"ok", "backend", "outputs": {name: shape}, "error"}``.
        """
        from modelyard.runtime.feeds import random_feeds

        feeds = next(random_feeds(artifact.spec, 1, seed=1234))
        try:
            backend, outputs = self._run_once(artifact, feeds)
        except ModelyardError as exc:
            return {"ok": False, "backend": artifact.format, "outputs": {}, "error": str(exc)}
        return {
            "ok": True,
            "backend": backend,
            "outputs": {k: list(v.shape) for k, v in outputs.items()},
            "error": None,
        }

    def _run_once(self, artifact: Artifact, feeds: dict[str, np.ndarray]) -> tuple[str, dict[str, np.ndarray]]:
        """Run ``artifact`` once on the backend that runs its format here; return that backend and the outputs.
        A pass whose output no runtime backend loads (a torch.export program) overrides this."""
        from modelyard.runtime.registry import get_backend
        from modelyard.runtime.targets import default_backend

        backend = default_backend(artifact.format)
        with get_backend(backend).load(artifact) as runner:
            return backend, runner.infer({k: v for k, v in feeds.items() if k in {i.name for i in runner.inputs}})

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


def copy_layer_map(source: Path | None, target: Path) -> None:
    """Carry a layer map sidecar from an input model to an output model (tensor names survive most passes)."""
    if source is None:
        return
    sidecar = source.with_name(source.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        shutil.copy2(sidecar, target.with_name(target.name + SIDECAR_SUFFIX))
