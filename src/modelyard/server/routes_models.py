"""Model registry: register versions (files already uploaded as blobs, or a job's output), list, show, card,
aliases, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput
from modelyard.core.ids import MAX_STORED_INT
from modelyard.server.auth import Principal, require
from modelyard.server.responses import (
    AliasDeleted,
    ModelDeleted,
    ModelList,
    ModelVersion,
    ModelVersionWithCard,
    documented,
)
from modelyard.server.responses import Model as ModelBody

router = APIRouter(tags=["models"])


class RegisterVersion(BaseModel):
    """A new version. Either ``files`` (stored name -> blob digest, uploaded first with ``POST /blobs``) with an
    ``entry``, or ``from_job`` alone to register the model file that job produced."""

    model_config = ConfigDict(extra="forbid")
    files: dict[str, str] | None = Field(default=None, description="stored name -> sha256 digest")
    entry: str | None = Field(default=None, description="the file a runtime loads: model.onnx or model.xml")
    source_format: str | None = Field(default=None, max_length=32, description="onnx, openvino, torch, sklearn...")
    preprocessing: dict[str, Any] | None = Field(
        default=None, description='image preprocessing (size, mean, std), or text preprocessing {"text": {"tokenizer": '
                                  'FOLDER, "max_length": N, "inputs": [...]}}')
    task: dict[str, Any] | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    description: str = Field(default="", max_length=10_000)
    from_job: str | None = Field(default=None, description="the job this version came from (recorded as lineage)")


class SetAlias(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_STORED_INT)


def _registry(request: Request):
    from modelyard.registry.versions import ModelRegistry

    return ModelRegistry(request.app.state.workspace)


def _job_files(registry, path) -> tuple[dict[str, str], str, str]:
    """Upload a job's model file (and its companions) to the blob store; only ONNX and IR, never code."""
    from modelyard.registry.formats import check_onnx, ir_files, onnx_files

    if path.suffix == ".onnx":
        check_onnx(path)
        files, entry, source = onnx_files(path), "model.onnx", "onnx"
    elif path.suffix == ".xml":
        files, entry, source = ir_files(path), "model.xml", "openvino"
    else:
        raise InvalidInput(f"the job produced {path.name}; only .onnx and OpenVINO .xml outputs can be registered")
    blobs = registry.workspace.blobs
    return {name: "sha256:" + blobs.put_file(p).digest for name, p in files.items()}, entry, source


@router.post("/models/{name}/versions", status_code=201,
             responses=documented(ModelVersion, 404, 409, 413, 422, status=201))
def register_version(name: str, body: RegisterVersion, request: Request,
                     principal: Principal = Depends(require("editor"))):
    registry = _registry(request)
    lineage = dict(body.lineage)
    files, entry, source_format = body.files, body.entry, body.source_format
    if body.from_job:
        job_lineage, produced = registry.lineage_of_job(body.from_job)
        lineage["job"] = job_lineage
        if files is None:
            if produced is None:
                raise InvalidInput(f"job {body.from_job} produced no model file to register; give the files")
            files, entry, job_source = _job_files(registry, produced)
            source_format = source_format or job_source
    if files is None or entry is None:
        raise InvalidInput("files and entry are required (or from_job naming a job that produced a model)")
    version = registry.create_version(
        name, files, entry, source_format or ("openvino" if entry.endswith(".xml") else "onnx"),
        preprocessing=body.preprocessing, task=body.task, metrics=body.metrics, tags=body.tags, lineage=lineage,
        description=body.description, created_by=principal.name,
    )
    return version.to_dict()


@router.get("/models", responses=documented(ModelList))
def list_models(request: Request, _: Principal = Depends(require("viewer"))):
    return {"schema": "modelyard.model-list/1", "items": _registry(request).list_models()}


@router.get("/models/{name}", responses=documented(ModelBody, 404))
def get_model(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    return _registry(request).get_model(name)


@router.delete("/models/{name}", responses=documented(ModelDeleted, 404, 409))
def delete_model(name: str, request: Request, _: Principal = Depends(require("editor"))):
    count = _registry(request).delete_model(name)
    return {"schema": "modelyard.model-deleted/1", "name": name, "versions_deleted": count}


@router.get("/models/{name}/versions/{selector}", responses=documented(ModelVersionWithCard, 404, 422))
def get_version(name: str, selector: str, request: Request, _: Principal = Depends(require("viewer"))):
    """``selector``: a version number, an alias or ``latest``."""
    return _registry(request).get_version(f"{name}@{selector}").to_dict(card=True)


@router.get("/models/{name}/versions/{selector}/card", response_class=Response,
            responses=documented(None, 404, 422, media_type="text/markdown", description="The model card."))
def get_card(name: str, selector: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The version's model card (Markdown)."""
    card = _registry(request).get_version(f"{name}@{selector}").card
    return Response(card, media_type="text/markdown; charset=utf-8")


class LadderDocument(BaseModel):
    """``modelyard.ladder/1``: the levels under a language model, L0 first (digest, dataset, metrics, gate)."""

    model_config = ConfigDict(extra="allow")
    ref: str
    levels: list[dict[str, Any]]


@router.get("/models/{name}/versions/{selector}/ladder", responses=documented(LadderDocument, 404, 422))
def get_ladder(name: str, selector: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The fine-tuning ladder under a language model: each level with its digest, dataset, metrics and gate."""
    from modelyard.registry.ladder import ladder_document

    registry = _registry(request)
    return ladder_document(registry, registry.get_version(f"{name}@{selector}"))


@router.delete("/models/{name}/versions/{version}", responses=documented(ModelDeleted, 404, 409, 422))
def delete_version(name: str, request: Request, version: int = Path(ge=1, le=MAX_STORED_INT),
                   _: Principal = Depends(require("editor"))):
    gone = _registry(request).delete_version(name, version)
    return {"schema": "modelyard.model-deleted/1", "name": name, "version": gone.version, "versions_deleted": 1}


@router.put("/models/{name}/aliases/{alias}", responses=documented(ModelVersion, 404, 413, 422))
def set_alias(name: str, alias: str, body: SetAlias, request: Request,
              principal: Principal = Depends(require("editor"))):
    """Point the alias at a version (creating or moving it). Running services deployed from ``name@alias`` follow:
    each gets a new revision serving the new version (the old one serves until it loads)."""
    from modelyard.deploy.services import ServiceStore
    from modelyard.deploy.supervisor import ensure_running

    workspace = request.app.state.workspace
    version = _registry(request).set_alias(name, alias, body.version, principal.name)
    if ServiceStore(workspace).follow_alias(name, alias, created_by=principal.name):
        ensure_running(workspace.settings, only_if_services=False)
    return version.to_dict()


@router.delete("/models/{name}/aliases/{alias}", responses=documented(AliasDeleted, 404, 422))
def delete_alias(name: str, alias: str, request: Request, _: Principal = Depends(require("editor"))):
    _registry(request).delete_alias(name, alias)
    return {"schema": "modelyard.alias-deleted/1", "name": name, "alias": alias}
