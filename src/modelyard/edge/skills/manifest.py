"""The skill package format: ``skill.yaml`` (the manifest) next to ``logic.py`` (the code).

A manifest names the skill, its inputs (video, image, audio, text), the JSON Schema of the events it emits, the JSON
Schema of its global and of its per-channel config, the models it uses (a file inside a PyPI package or a registry
reference, each with its sha256), its license and whether it runs offline. ``load_manifest`` validates all of it;
``validate_config`` checks a global config and every channel's config against the schemas and says which channel is
wrong.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modelyard.core.errors import IntegrityError, InvalidInput, NotFound

MANIFEST_FILE = "skill.yaml"
LOGIC_FILE = "logic.py"
Input = Literal["video", "image", "audio", "text"]
# keys of a channel entry the runtime reads itself; everything under "config" is the skill's per-channel config
CHANNEL_RUNTIME_KEYS = ("source", "fps", "loop", "realtime", "config")


class ModelRef(BaseModel):
    """One model file the skill uses: inside an installed PyPI package (``package`` + ``file``) or a registry
    version (``registry: NAME@VERSION``); ``sha256`` pins its bytes either way."""

    model_config = ConfigDict(extra="forbid")
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    package: str | None = None
    package_version: str | None = None
    file: str | None = None
    registry: str | None = None
    license: str | None = None

    def locate(self) -> Path:
        """The model file on this machine (package files only; registry models are fetched by the agent)."""
        if self.package is None or self.file is None:
            raise NotFound(f"model {self.name}: a registry model ({self.registry}) is fetched by the agent, "
                           "not found in a package")
        spec = importlib.util.find_spec(self.package.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            raise NotFound(f"model {self.name}: package {self.package} is not installed")
        path = Path(next(iter(spec.submodule_search_locations))) / self.file
        if not path.is_file():
            raise NotFound(f"model {self.name}: {self.file} is missing from package {self.package}")
        return path

    def verify(self) -> dict:
        """Hash the file and compare with the manifest; returns a report (raises IntegrityError on mismatch)."""
        path = self.locate()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise IntegrityError(f"model {self.name}: {path} has sha256 {digest[:12]}…, the manifest pins "
                                 f"{self.sha256[:12]}…")
        installed = None
        if self.package:
            try:
                installed = importlib.metadata.version(self.package)
            except importlib.metadata.PackageNotFoundError:
                installed = None
        return {"name": self.name, "path": str(path), "bytes": path.stat().st_size, "sha256": digest,
                "package": self.package, "package_version": installed}


class ConfigSchemas(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    global_: dict = Field(default_factory=lambda: {"type": "object"}, alias="global")
    channel: dict = Field(default_factory=lambda: {"type": "object"})


class SkillManifest(BaseModel):
    """``skill.yaml``: what a skill is, takes, emits and needs."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,62}$")
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    description: str = ""
    inputs: list[Input]
    outputs: dict = Field(default_factory=lambda: {"type": "object"})  # JSON Schema of one event
    config: ConfigSchemas = Field(default_factory=ConfigSchemas)
    models: list[ModelRef] = Field(default_factory=list)
    packages: dict[str, str] = Field(default_factory=dict)  # PyPI name -> version spec the logic imports
    license: str
    offline: bool = True
    batch: bool = False  # the logic has infer_batch(items): frames of all channels go through one inference

    @field_validator("inputs")
    @classmethod
    def _some_input(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a skill takes at least one input kind")
        return value

    def to_dict(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


def _check_schema(schema: dict, where: str) -> None:
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"{where} is not a valid JSON Schema: {exc.message}") from exc


def load_manifest(skill_dir: str | Path) -> SkillManifest:
    """Read and validate ``skill_dir/skill.yaml`` (and that ``logic.py`` exists)."""
    skill_dir = Path(skill_dir)
    path = skill_dir / MANIFEST_FILE
    if not path.is_file():
        raise NotFound(f"{skill_dir} is not a skill: it has no {MANIFEST_FILE}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: the manifest must be a mapping")
    try:
        manifest = SkillManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "manifest"
        raise InvalidInput(f"{path}: {where}: {first['msg']}") from exc
    _check_schema(manifest.outputs, f"{path}: outputs")
    _check_schema(manifest.config.global_, f"{path}: config.global")
    _check_schema(manifest.config.channel, f"{path}: config.channel")
    if not (skill_dir / LOGIC_FILE).is_file():
        raise InvalidInput(f"{skill_dir}: the skill has no {LOGIC_FILE}")
    return manifest


def _first_error(schema: dict, value: Any) -> str | None:
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(p) for p in error.path)
    return f"{where}: {error.message}" if where else error.message


def validate_config(manifest: SkillManifest, config: dict | None, channels: dict | None = None) -> None:
    """Check the global config and each channel's config against the manifest; InvalidInput names what failed.

    Args:
        manifest: the skill's manifest.
        config: global config (None = {}).
        channels: ``{channel_id: {"source", "fps", "config": {...}}}`` (None = no channels).
    """
    problem = _first_error(manifest.config.global_, config or {})
    if problem:
        raise InvalidInput(f"skill {manifest.name}: global config: {problem}")
    for channel_id, channel in (channels or {}).items():
        if not isinstance(channel, dict):
            raise InvalidInput(f"skill {manifest.name}: channel {channel_id}: must be a mapping")
        unknown = sorted(set(channel) - set(CHANNEL_RUNTIME_KEYS))
        if unknown:
            raise InvalidInput(f"skill {manifest.name}: channel {channel_id}: unknown key(s) {', '.join(unknown)} "
                               f"(a channel has {', '.join(CHANNEL_RUNTIME_KEYS)})")
        fps = channel.get("fps", 5)
        if not isinstance(fps, (int, float)) or not 0 < fps <= 120:
            raise InvalidInput(f"skill {manifest.name}: channel {channel_id}: fps must be in (0, 120], got {fps!r}")
        problem = _first_error(manifest.config.channel, channel.get("config") or {})
        if problem:
            raise InvalidInput(f"skill {manifest.name}: channel {channel_id}: config: {problem}")


def channel_config(config: dict | None, channel: dict | None) -> dict:
    """The config a channel's logic sees: the global config overlaid by the channel's own."""
    return {**(config or {}), **((channel or {}).get("config") or {})}


def load_logic(skill_dir: str | Path, manifest: SkillManifest):
    """Import ``logic.py`` under a private module name and check it has ``setup`` and ``process``."""
    path = Path(skill_dir) / LOGIC_FILE
    spec = importlib.util.spec_from_file_location(f"modelyard_skill_{manifest.name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for hook in ("setup", "process"):
        if not callable(getattr(module, hook, None)):
            raise InvalidInput(f"skill {manifest.name}: {LOGIC_FILE} defines no {hook}()")
    if manifest.batch and not callable(getattr(module, "infer_batch", None)):
        raise InvalidInput(f"skill {manifest.name}: batch: true but {LOGIC_FILE} defines no infer_batch()")
    return module
