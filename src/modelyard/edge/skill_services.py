"""``modelyard skills deploy NAME``: a market skill as a platform service (the EI-style "ready API") with the same
lifecycle as a model service: revisions, replicas under the supervisor, the service URL and token rules,
``/readyz``, ``/metrics``, logs, ``modelyard services list|show|stop``.

The revision's one traffic entry is of kind ``skill``: the skill's name, version and the content digest of its package
(every file of its folder), so a replica refuses to serve a skill whose code changed since the deploy. Its replicas
run :mod:`modelyard.edge.skill_replica` (the supervisor picks the module by the entry's kind).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from modelyard.deploy.services import MAX_REPLICAS

SKILL_REF_PREFIX = "skill:"


class SkillDeploySpec(BaseModel):
    """A skill deployment, as the CLI, REST (``POST /api/v1/skills/{name}/deploy``) and SDK take it (the skill's
    name is the path's / the command's argument).

    Args:
        version: the skill's version (default: the newest).
        service: the service name (default: the skill's name).
        replicas: replica processes (1-16). Default 1.
        config: the skill's global config (checked against its config schema now).
        port, host, public: as for a model service.
    """

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, max_length=40)
    service: str | None = Field(default=None, max_length=100)
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    config: dict = Field(default_factory=dict)
    port: int = Field(default=0, ge=0, le=65535)
    host: str = Field(default="127.0.0.1", min_length=1, max_length=200)
    public: bool = False


def content_digest(folder: Path) -> str:
    """sha256 over the package's files (relative path and bytes), compiled caches left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return "sha256:" + digest.hexdigest()


def skill_entry(home, name: str, version: str | None = None) -> tuple[dict, Path]:
    """The traffic entry serving ``name`` (NotFound when the market has no such skill) and its folder."""
    from modelyard.edge.skills.manifest import load_manifest
    from modelyard.edge.skills.market import skill_dir

    folder = skill_dir(home, name, version)
    manifest = load_manifest(folder)
    entry = {"kind": "skill", "ref": f"{SKILL_REF_PREFIX}{manifest.name}@{manifest.version}", "skill": manifest.name,
             "version": manifest.version, "digest": content_digest(folder), "inputs": manifest.inputs, "weight": 100.0,
             "requested": name if version is None else f"{name}@{version}"}
    return entry, folder


def deploy_skill(workspace, name: str, spec: SkillDeploySpec, created_by: str = ""):
    """Create the service (or a new revision of it) serving the market skill ``name``; returns the
    :class:`~modelyard.deploy.services.Service` (NotFound when the market has no such skill). The
    supervisor starts its replicas; a skill that cannot load leaves the previous revision serving."""
    from modelyard.deploy.services import ServiceStore
    from modelyard.edge.skills.manifest import load_manifest, validate_config

    entry, folder = skill_entry(workspace.home, name, spec.version)
    validate_config(load_manifest(folder), spec.config)
    config = {"skill_config": spec.config}
    return ServiceStore(workspace).deploy_revision(
        spec.service or entry["skill"], [entry], config, replicas=spec.replicas, host=spec.host, port=spec.port,
        public=spec.public, created_by=created_by)
