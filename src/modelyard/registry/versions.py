"""``ModelRegistry``: models, immutable versions and movable aliases in the metadata database, artifacts in the
blob store.

A version is written once, in one transaction, after its files were verified against their digests and its
signature was read from the artifact itself. Nothing updates a version row afterwards; aliases are separate rows
that point at versions.

Example::

    registry = ModelRegistry(workspace)
    version = registry.create_version("resnet", {"model.onnx": "sha256:..."}, "model.onnx", "onnx")
    registry.set_alias("resnet", "production", version.version)
    registry.get_version("resnet@production").signature
"""

from __future__ import annotations

import math
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.core.jsonsafe import check_finite
from modelyard.registry.card import render_card
from modelyard.registry.formats import SERVED_FORMATS, TEXT_FORMATS, check_stored_name
from modelyard.registry.refs import ModelRef, check_alias, check_name, parse_ref
from modelyard.registry.signature import Signature, read_signature
from modelyard.store.db import as_utc
from modelyard.store.schema import jobs, model_aliases, model_versions, models, service_revisions, services
from modelyard.store.workspace import Workspace

MAX_TAGS = 100
MAX_METRICS = 200
MAX_LINEAGE_CHARS = 64 * 1024
_FORMAT_BY_SUFFIX = {".onnx": "onnx", ".xml": "openvino", ".gguf": "gguf"}
_FORMAT_BY_NAME = {"config.json": "hf", "adapter_config.json": "peft"}


def _format_of_entry(entry: str) -> str | None:
    return _FORMAT_BY_NAME.get(entry) or _FORMAT_BY_SUFFIX.get(Path(entry).suffix.lower())


def content_digest(files: dict[str, dict]) -> str:
    """One hash naming a version's content: sha256 over its sorted ``stored name, file digest`` pairs (so an L2's
    lineage names its L1 and L0 exactly, whatever they are called in the registry)."""
    import hashlib

    text = "\n".join(f"{name}\t{files[name]['digest']}" for name in sorted(files))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    """One immutable version. ``files`` maps stored names to ``{"digest", "size"}``."""

    id: str
    model_id: str
    name: str
    version: int
    format: str
    source_format: str
    entry: str
    files: dict[str, dict]
    size: int
    signature: Signature
    metrics: dict[str, float]
    tags: dict[str, str]
    lineage: dict
    card: str
    description: str
    created_by: str
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self, card: bool = False) -> dict:
        data = {
            "schema": "modelyard.model-version/1",
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "uri": f"modelyard://{self.ref}",
            "format": self.format,
            "source_format": self.source_format,
            "entry": self.entry,
            "files": self.files,
            "digest": content_digest(self.files),
            "size": self.size,
            "signature": self.signature.to_dict(),
            "metrics": self.metrics,
            "tags": self.tags,
            "lineage": self.lineage,
            "aliases": list(self.aliases),
            "description": self.description,
            "created_by": self.created_by,
            "created_at": isoformat(self.created_at),
        }
        if card:
            data["card"] = self.card
        return data

    def __str__(self) -> str:
        inputs = ", ".join(f"{t.name}{t.describe_shape()}:{t.dtype}" for t in self.signature.inputs)
        return f"{self.ref} ({self.format}, {self.size} bytes) inputs {inputs}"


def _check_metrics(metrics: Any) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        raise InvalidInput(f"metrics: must be a mapping of at most {MAX_METRICS} name -> number")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise InvalidInput(f"metrics: name {key!r} must be 1-100 characters")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"metrics.{key}: {value!r} is not a finite number")
        out[key] = float(value)
    return out


def _check_tags(tags: Any) -> dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
        raise InvalidInput(f"tags: must be a mapping of at most {MAX_TAGS} name -> text")
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise InvalidInput(f"tags: name {key!r} must be 1-100 characters")
        if not isinstance(value, str) or len(value) > 1000:
            raise InvalidInput(f"tags.{key}: must be text of at most 1000 characters")
    return dict(tags)


def _check_lineage(lineage: Any) -> dict:
    import json

    if lineage is None:
        return {}
    if not isinstance(lineage, dict):
        raise InvalidInput("lineage: must be a mapping")
    check_finite(lineage, "lineage")
    try:
        text = json.dumps(lineage)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"lineage: not JSON-able: {exc}") from None
    if len(text) > MAX_LINEAGE_CHARS:
        raise InvalidInput(f"lineage: larger than {MAX_LINEAGE_CHARS} characters")
    return lineage


class ModelRegistry:
    """Models of one workspace. Constructing it does no I/O."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.engine = workspace.engine
        self.root = workspace.home / "registry"

    # -- paths --------------------------------------------------------------------------------------------------
    def cache_dir(self, version_id: str) -> Path:
        return self.root / "cache" / version_id

    # -- reading ------------------------------------------------------------------------------------------------
    def _aliases_by_version(self, conn, model_id: str) -> dict[str, list[str]]:
        rows = conn.execute(sa.select(model_aliases.c.alias, model_aliases.c.version_id)
                            .where(model_aliases.c.model_id == model_id).order_by(model_aliases.c.alias)).all()
        out: dict[str, list[str]] = {}
        for alias, version_id in rows:
            out.setdefault(version_id, []).append(alias)
        return out

    def _version(self, row, name: str, aliases: list[str] | None = None) -> ModelVersion:
        return ModelVersion(
            id=row.id, model_id=row.model_id, name=name, version=row.version, format=row.format,
            source_format=row.source_format, entry=row.entry, files=row.files, size=int(row.size),
            signature=Signature.from_dict(row.signature), metrics=row.metrics, tags=row.tags, lineage=row.lineage,
            card=row.card, description=row.description, created_by=row.created_by,
            created_at=as_utc(row.created_at), aliases=tuple(aliases or ()),
        )

    def _model_row(self, conn, name: str):
        row = conn.execute(sa.select(models).where(models.c.name == name)).first()
        if row is None:
            raise NotFound(f"model {name!r} not found")
        return row

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        """The version ``ref`` names (``N``, ``N@3``, ``N@alias``, with or without ``modelyard://``)."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        with self.engine.connect() as conn:
            model = self._model_row(conn, parsed.name)
            query = sa.select(model_versions).where(model_versions.c.model_id == model.id)
            if parsed.version is not None:
                row = conn.execute(query.where(model_versions.c.version == parsed.version)).first()
                if row is None:
                    raise NotFound(f"model {parsed.name!r} has no version {parsed.version}")
            elif parsed.alias is not None:
                alias = conn.execute(sa.select(model_aliases.c.version_id).where(
                    model_aliases.c.model_id == model.id, model_aliases.c.alias == parsed.alias)).scalar()
                if alias is None:
                    raise NotFound(f"model {parsed.name!r} has no alias {parsed.alias!r}")
                row = conn.execute(query.where(model_versions.c.id == alias)).first()
            else:
                row = conn.execute(query.order_by(model_versions.c.version.desc()).limit(1)).first()
                if row is None:
                    raise NotFound(f"model {parsed.name!r} has no versions")
            aliases = self._aliases_by_version(conn, model.id).get(row.id, [])
        return self._version(row, parsed.name, aliases)

    def get_version_by_id(self, version_id: str) -> ModelVersion:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(model_versions).where(model_versions.c.id == version_id)).first()
            if row is None:
                raise NotFound(f"model version {version_id} not found (was it deleted?)")
            name = conn.execute(sa.select(models.c.name).where(models.c.id == row.model_id)).scalar_one()
            aliases = self._aliases_by_version(conn, row.model_id).get(row.id, [])
        return self._version(row, name, aliases)

    def get_model(self, name: str) -> dict:
        """A model with all its versions (newest first) and aliases."""
        with self.engine.connect() as conn:
            model = self._model_row(conn, name)
            rows = conn.execute(sa.select(model_versions).where(model_versions.c.model_id == model.id)
                                .order_by(model_versions.c.version.desc())).all()
            by_version = self._aliases_by_version(conn, model.id)
        versions = [self._version(r, name, by_version.get(r.id, [])) for r in rows]
        aliases = {alias: v.version for v in versions for alias in v.aliases}
        return {
            "schema": "modelyard.model/1",
            "name": name,
            "description": model.description,
            "created_by": model.created_by,
            "created_at": isoformat(as_utc(model.created_at)),
            "aliases": dict(sorted(aliases.items())),
            "versions": [v.to_dict() for v in versions],
        }

    def versions_page(self, name: str, offset: int = 0, limit: int = 50) -> tuple[list[ModelVersion], int]:
        """A page of a model's versions, newest first, and how many it has (without loading the rest)."""
        from modelyard.store.listing import fetch_page

        with self.engine.connect() as conn:
            model = self._model_row(conn, name)
            by_version = self._aliases_by_version(conn, model.id)
        rows, total = fetch_page(self.engine, sa.select(model_versions).where(model_versions.c.model_id == model.id),
                                 [model_versions.c.version.desc()], offset, limit)
        return [self._version(r, name, by_version.get(r.id, [])) for r in rows], total

    def list_models(self) -> list[dict]:
        """Every model with its newest version, version count and aliases."""
        with self.engine.connect() as conn:
            stats = {r.model_id: (r.latest, r.count) for r in conn.execute(
                sa.select(model_versions.c.model_id, sa.func.max(model_versions.c.version).label("latest"),
                          sa.func.count().label("count")).group_by(model_versions.c.model_id))}
            alias_rows = conn.execute(
                sa.select(model_aliases.c.model_id, model_aliases.c.alias, model_versions.c.version)
                .join(model_versions, model_versions.c.id == model_aliases.c.version_id)).all()
            rows = conn.execute(sa.select(models).order_by(models.c.name)).all()
        aliases: dict[str, dict[str, int]] = {}
        for model_id, alias, version in alias_rows:
            aliases.setdefault(model_id, {})[alias] = version
        return [{"name": r.name, "description": r.description, "latest": stats.get(r.id, (None, 0))[0],
                 "versions": stats.get(r.id, (None, 0))[1], "aliases": dict(sorted(aliases.get(r.id, {}).items())),
                 "created_at": isoformat(as_utc(r.created_at))} for r in rows]

    # -- writing ------------------------------------------------------------------------------------------------
    def lineage_of_job(self, job_id: str) -> tuple[dict, Path | None]:
        """Lineage for ``--from-job``, and the model file the job produced (inside its own folder), if any."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} not found")
        lineage = {"id": row.id, "kind": row.kind, "status": row.status, "spec": row.spec}
        produced = None
        result = row.result or {}
        artifact = result.get("artifact") if isinstance(result, dict) else None
        if isinstance(artifact, dict) and isinstance(artifact.get("path"), str):
            job_dir = (self.workspace.settings.jobs_dir / row.id).resolve()
            candidate = Path(artifact["path"]).resolve()
            lineage["artifact"] = artifact
            if candidate.is_relative_to(job_dir) and candidate.is_file():
                produced = candidate
        return lineage, produced

    def create_version(
        self,
        name: str,
        files: dict[str, str],
        entry: str,
        source_format: str,
        *,
        preprocessing: dict | None = None,
        task: dict | None = None,
        metrics: dict | None = None,
        tags: dict | None = None,
        lineage: dict | None = None,
        description: str = "",
        created_by: str = "",
    ) -> ModelVersion:
        """Register a new version from files already in the blob store.

        Args:
            name: the model (created on first registration).
            files: stored name -> blob digest, the entry among them.
            entry: the stored name a runtime loads; its suffix gives the format (``.onnx`` or ``.xml``).
            source_format: what the files were made from (``onnx``, ``openvino``, ``torch``, ``sklearn``...).
            preprocessing, task, metrics, tags, lineage, description: recorded as given (validated).
        """
        check_name(name)
        if not isinstance(files, dict) or not files:
            raise InvalidInput("files: at least one file is needed")
        for stored in files:
            check_stored_name(stored)
        if entry not in files:
            raise InvalidInput(f"entry: {entry!r} is not among the files {sorted(files)}")
        fmt = _format_of_entry(entry)
        if fmt not in SERVED_FORMATS + TEXT_FORMATS:
            raise InvalidInput(f"entry: {entry!r} must be an .onnx file, an OpenVINO .xml, a language model's "
                               "config.json or .gguf, or a LoRA adapter's adapter_config.json")
        if not isinstance(source_format, str) or not source_format or len(source_format) > 32:
            raise InvalidInput("source_format: must be a short name such as onnx, torch or sklearn")
        metrics, tags, lineage = _check_metrics(metrics), _check_tags(tags), _check_lineage(lineage)
        # a stored NaN would make every later read of the version fail (JSON has no NaN)
        check_finite(preprocessing, "preprocessing")
        check_finite(task, "task")
        if len(description or "") > 10_000:
            raise InvalidInput("description: at most 10000 characters")
        staging = self.root / "staging" / uuid.uuid4().hex
        try:
            stored = {}
            for stored_name, digest in files.items():
                info = self.workspace.blobs.info(digest)
                self.workspace.blobs.copy_to(info.digest, staging / stored_name)
                stored[stored_name] = {"digest": "sha256:" + info.digest, "size": info.size}
            if fmt == "onnx":
                from modelyard.registry.formats import check_onnx

                check_onnx(staging / entry)
            signature = read_signature(staging / entry, fmt, preprocessing, task)
            # validation turns the strings "NaN"/"Infinity" into floats: check what would be stored
            check_finite(signature.preprocessing, "preprocessing")
            check_finite(signature.task, "task")
            version = self._insert(name, stored, entry, fmt, source_format, signature, metrics, tags, lineage,
                                   description or "", created_by)
            target = self.cache_dir(version.id)
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(target)
            return version
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _insert(self, name, stored, entry, fmt, source_format, signature, metrics, tags, lineage, description,
                created_by) -> ModelVersion:
        size = sum(f["size"] for f in stored.values())
        for _attempt in range(5):
            now = utcnow()
            try:
                with self.engine.begin() as conn:
                    model = conn.execute(sa.select(models).where(models.c.name == name)).first()
                    if model is None:
                        model_id = new_id("mdl")
                        conn.execute(models.insert().values(id=model_id, name=name, created_by=created_by,
                                                            created_at=now))
                    else:
                        model_id = model.id
                    latest = conn.execute(sa.select(sa.func.max(model_versions.c.version))
                                          .where(model_versions.c.model_id == model_id)).scalar()
                    number = (latest or 0) + 1
                    card = render_card(name, number, fmt, source_format, stored, signature, metrics, tags, lineage,
                                       description, created_by, isoformat(now))
                    version_id = new_id("mver")
                    conn.execute(model_versions.insert().values(
                        id=version_id, model_id=model_id, version=number, format=fmt, source_format=source_format,
                        entry=entry, files=stored, size=size, signature=signature.to_dict(), metrics=metrics,
                        tags=tags, lineage=lineage, card=card, description=description, created_by=created_by,
                        created_at=now))
                return self.get_version_by_id(version_id)
            except sa.exc.IntegrityError:
                continue  # another registration took the number (or created the model) first: read again
        raise Conflict(f"model {name!r}: could not allocate a version number (too many concurrent registrations)")

    def set_alias(self, name: str, alias: str, version: int, updated_by: str = "") -> ModelVersion:
        """Point ``alias`` at ``name@version`` (creating or moving it)."""
        check_alias(alias)
        target = self.get_version(ModelRef(name, version=int(version)))
        values = {"version_id": target.id, "updated_by": updated_by, "updated_at": utcnow()}
        for _attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    moved = conn.execute(model_aliases.update().where(
                        model_aliases.c.model_id == target.model_id, model_aliases.c.alias == alias).values(**values))
                    if not moved.rowcount:
                        conn.execute(model_aliases.insert().values(model_id=target.model_id, alias=alias, **values))
                break
            except sa.exc.IntegrityError:
                continue
        return self.get_version_by_id(target.id)

    def delete_alias(self, name: str, alias: str) -> None:
        with self.engine.begin() as conn:
            model = self._model_row(conn, name)
            gone = conn.execute(model_aliases.delete().where(model_aliases.c.model_id == model.id,
                                                             model_aliases.c.alias == alias))
        if not gone.rowcount:
            raise NotFound(f"model {name!r} has no alias {alias!r}")

    def services_using(self, version_ids: set[str]) -> list[str]:
        """Names of running services whose live or desired revision routes traffic to any of ``version_ids``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(services.c.name, service_revisions.c.traffic)
                .join(service_revisions, service_revisions.c.service_id == services.c.id)
                .where(services.c.state == "running",
                       sa.or_(service_revisions.c.revision == services.c.revision,
                              service_revisions.c.revision == services.c.live_revision))).all()
        return sorted({name for name, traffic in rows if any(t.get("version_id") in version_ids for t in traffic)})

    def jobs_using(self, name: str, version_ids: set[str] | None = None) -> list[str]:
        """Queued or running jobs whose spec names model ``name`` in ``model`` (as ``batch.predict`` and
        ``evaluate`` do), as ``"job_... (kind)"``: every one of them when ``version_ids`` is None (the whole model
        goes), else those whose reference resolves to one of ``version_ids`` now (``N``, ``N@alias`` included)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(jobs.c.id, jobs.c.kind, jobs.c.spec)
                                .where(jobs.c.status.in_(("queued", "running"))).order_by(jobs.c.created_at)).all()
        found = []
        for job_id, kind, spec in rows:
            ref = spec.get("model") if isinstance(spec, dict) else None
            try:
                parsed = parse_ref(ref) if isinstance(ref, str) else None
            except InvalidInput:
                continue
            if parsed is None or parsed.name != name:
                continue
            if version_ids is not None:
                try:
                    if self.get_version(parsed).id not in version_ids:
                        continue
                except NotFound:
                    continue
            found.append(f"{job_id} ({kind})")
        return found

    def delete_version(self, name: str, version: int) -> ModelVersion:
        """Delete one version (and the aliases on it). Refused while a running service routes to it or a queued
        or running job names it. Its blobs stay in the content-addressed store (other versions may share them)."""
        target = self.get_version(ModelRef(name, version=int(version)))
        users = self.services_using({target.id})
        if users:
            raise Conflict(f"{target.ref} is served by {', '.join(users)}; stop or re-route them first")
        waiting = self.jobs_using(name, {target.id})
        if waiting:
            raise Conflict(f"{target.ref} is used by queued or running job {', '.join(waiting)}; let it finish or "
                           "cancel it first")
        with self.engine.begin() as conn:
            conn.execute(model_aliases.delete().where(model_aliases.c.version_id == target.id))
            conn.execute(model_versions.delete().where(model_versions.c.id == target.id))
        shutil.rmtree(self.cache_dir(target.id), ignore_errors=True)
        return target

    def delete_model(self, name: str) -> int:
        """Delete a model with all its versions; returns how many versions went. Refused while a running service
        or a queued or running job uses it."""
        with self.engine.connect() as conn:
            model = self._model_row(conn, name)
            ids = set(conn.execute(sa.select(model_versions.c.id)
                                   .where(model_versions.c.model_id == model.id)).scalars())
        users = self.services_using(ids)
        if users:
            raise Conflict(f"model {name!r} is served by {', '.join(users)}; stop them first")
        waiting = self.jobs_using(name)
        if waiting:
            raise Conflict(f"model {name!r} is used by queued or running job {', '.join(waiting)}; let it finish or "
                           "cancel it first")
        with self.engine.begin() as conn:
            conn.execute(model_aliases.delete().where(model_aliases.c.model_id == model.id))
            conn.execute(model_versions.delete().where(model_versions.c.model_id == model.id))
            conn.execute(models.delete().where(models.c.id == model.id))
        for version_id in ids:
            shutil.rmtree(self.cache_dir(version_id), ignore_errors=True)
        return len(ids)
