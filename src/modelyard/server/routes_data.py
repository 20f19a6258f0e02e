"""Datasets: import (from an uploaded blob), list, versions, stats with the trainability check, manifest,
preprocessing steps."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.ids import MAX_STORED_INT
from modelyard.server.auth import Principal, require
from modelyard.server.responses import Dataset as DatasetBody
from modelyard.server.responses import (
    DatasetDeleted,
    DatasetList,
    DatasetManifest,
    DatasetStats,
    DatasetSteps,
    DatasetVersion,
    documented,
)

router = APIRouter(tags=["datasets"])
ImportFormat = Literal["auto", "coco", "voc", "yolo", "labelstudio", "csv"]
FORMAT_HELP = ("Annotation format of annotated images (auto: detected). Unset: annotations are read when kind is "
               "object-detection or when kind auto finds a COCO, Label Studio, VOC or YOLO folder.")


class ImportDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="Dataset name; created on first import.")
    source: str = Field(description="sha256 digest of the uploaded file (POST /blobs): a CSV/Parquet table, a "
                                    ".zip/.tar of class folders, or a CSV of path,label inside such an archive, or "
                                    "a .zip/.tar of a COCO, Pascal VOC, YOLO or Label Studio folder.")
    filename: str = Field(min_length=1, max_length=255, description="The file's name; its suffix picks the reader.")
    kind: Literal["auto", "tabular", "image-classification", "object-detection", "multilabel-classification", "text",
                  "text-classification"] = "auto"
    label: str | None = Field(default=None, description="Label column of a table.")
    task: Literal["auto", "classification", "regression"] = "auto"
    format: ImportFormat | None = Field(default=None, description=FORMAT_HELP)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0
    description: str = Field(default="", max_length=10_000)


class ImportFiles(BaseModel):
    """An import of files uploaded one by one (``POST /blobs``, after ``POST /blobs/missing``): no size limit."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="Dataset name; created on first import.")
    files: dict[str, str] = Field(min_length=1, description="relative path -> sha256 digest: an image folder "
                                                             "(class/*.png), an annotation folder (COCO, VOC, "
                                                             "YOLO, Label Studio) or one table file (data.csv)")
    kind: Literal["auto", "tabular", "image-classification", "object-detection", "multilabel-classification", "text",
                  "text-classification"] = "auto"
    label: str | None = Field(default=None, description="Label column of a table.")
    task: Literal["auto", "classification", "regression"] = "auto"
    format: ImportFormat | None = Field(default=None, description=FORMAT_HELP)
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 0
    description: str = Field(default="", max_length=10_000)
    source_name: str | None = Field(default=None, max_length=255, description="The folder's name, to record.")


class Steps(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=20,
                                        description="Operators, e.g. [{\"op\": \"impute\", \"strategy\": \"median\"}]")


def _store(request: Request):
    from modelyard.data.datasets import DatasetStore

    return DatasetStore(request.app.state.workspace)


def _ref(name: str, version: str) -> str:
    return f"{name}@{version}"


@router.post("/datasets/import", status_code=201, responses=documented(DatasetVersion, 404, 413, 422, status=201))
def import_dataset(body: ImportDataset, request: Request, principal: Principal = Depends(require("editor"))):
    """Import an uploaded file as the next version of dataset ``name`` (nothing is stored if it fails)."""
    from modelyard.core.errors import InvalidInput

    filename = Path(body.filename).name
    if not filename or filename in (".", ".."):
        raise InvalidInput(f"filename {body.filename!r}: give the uploaded file's name")
    if len(filename.encode("utf-8")) > 255:
        raise InvalidInput(f"filename {filename[:40]!r}...: longer than 255 bytes, more than a file system allows")
    store = _store(request)
    with tempfile.TemporaryDirectory(prefix="modelyard-upload-") as scratch:
        # the copy gets a short name (only the suffixes pick a reader); the user's name is passed as source_name,
        # so a long one never meets the file system's limit inside the temporary name
        suffix = "".join(Path(filename).suffixes[-2:])[-32:]
        local = store.blobs.copy_to(body.source, Path(scratch) / f"upload{suffix}")
        version = store.import_path(local, body.name, kind=body.kind, label=body.label, task=body.task,
                                    validation_fraction=body.validation_fraction, seed=body.seed,
                                    description=body.description, created_by=principal.name, source_name=filename,
                                    fmt=body.format)
    return version.to_dict()


@router.post("/datasets/import-files", status_code=201,
             responses=documented(DatasetVersion, 404, 413, 422, status=201))
def import_files(body: ImportFiles, request: Request, principal: Principal = Depends(require("editor"))):
    """Import uploaded files (a folder's tree, or one table) as the next version of ``name``. The files are linked
    (or copied) from the blob store into a scratch folder one at a time, so memory does not grow with their size."""
    from modelyard.core.errors import InvalidInput, NotFound
    from modelyard.core.trust import check_files

    check_files(body.files)
    store = _store(request)
    missing = store.blobs.missing(list(body.files.values()))
    if missing:
        raise NotFound(f"{len(missing)} of {len(body.files)} files are not uploaded yet (POST /blobs/missing says "
                       f"which), e.g. {missing[0]}")
    shown = Path(body.source_name or "upload").name or "upload"
    with tempfile.TemporaryDirectory(prefix="modelyard-upload-") as scratch:
        folder = store.blobs.materialize(body.files, Path(scratch) / "files", link=True)
        names = list(body.files)
        if len(names) == 1 and "/" not in names[0]:
            local, shown = folder / names[0], names[0]
        else:
            if body.kind == "tabular":
                raise InvalidInput("a folder of files cannot be imported as a table; upload one table file")
            local = folder
        version = store.import_path(local, body.name, kind=body.kind, label=body.label, task=body.task,
                                    validation_fraction=body.validation_fraction, seed=body.seed,
                                    description=body.description, created_by=principal.name, source_name=shown,
                                    fmt=body.format)
    return version.to_dict()


@router.get("/datasets", responses=documented(DatasetList))
def list_datasets(request: Request, _: Principal = Depends(require("viewer"))):
    return {"schema": "modelyard.dataset-list/1", "items": _store(request).list()}


@router.get("/datasets/{name}", responses=documented(DatasetBody, 404))
def dataset_versions(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    versions = _store(request).versions(name)
    return {"schema": "modelyard.dataset/1", "name": name, "kind": versions[-1].kind,
            "versions": [v.to_dict() for v in versions]}


@router.delete("/datasets/{name}", responses=documented(DatasetDeleted, 404, 409, 422))
def delete_dataset(name: str, request: Request, _: Principal = Depends(require("editor"))):
    """Delete a dataset with all its versions (rows only; ``POST /blobs/gc`` frees the files nothing else uses).
    409 while an unfinished job uses it."""
    gone = _store(request).delete(name)
    return {"schema": "modelyard.dataset-deleted/1", "name": name, "versions_deleted": [v.version for v in gone]}


@router.delete("/datasets/{name}/versions/{version}", responses=documented(DatasetDeleted, 404, 409, 422))
def delete_version(name: str, request: Request, version: int = PathParameter(ge=1, le=MAX_STORED_INT),
                   _: Principal = Depends(require("editor"))):
    """Delete one version (rows only; see ``DELETE /datasets/{name}``)."""
    gone = _store(request).delete(_ref(name, str(version)))
    return {"schema": "modelyard.dataset-deleted/1", "name": name, "versions_deleted": [v.version for v in gone]}


@router.get("/datasets/{name}/versions/{version}", responses=documented(DatasetVersion, 404, 422))
def get_version(name: str, version: str, request: Request, _: Principal = Depends(require("viewer"))):
    return _store(request).get(_ref(name, version)).to_dict()


@router.get("/datasets/{name}/versions/{version}/stats", responses=documented(DatasetStats, 404, 422))
def version_stats(name: str, version: str, request: Request, _: Principal = Depends(require("viewer"))):
    store = _store(request)
    found = store.get(_ref(name, version))
    return {"schema": "modelyard.dataset-stats/1", "ref": found.ref, "kind": found.kind, "stats": found.stats,
            "data_schema": found.schema, "check": store.check(found).to_dict()}


@router.get("/datasets/{name}/versions/{version}/manifest", responses=documented(DatasetManifest, 404, 422))
def version_manifest(name: str, version: str, request: Request, _: Principal = Depends(require("viewer"))):
    store = _store(request)
    return store.manifest(store.get(_ref(name, version)))


@router.get("/datasets/{name}/versions/{version}/duplicates", responses=documented(None, 404, 422))
def duplicate_preview(name: str, version: str, request: Request,
                      near: bool = Query(True, description="Include near-duplicate images, not only identical files."),
                      _: Principal = Depends(require("viewer"))):
    """What the ``dedupe`` step would remove from an image version (``modelyard.dedupe-plan/1``); removes nothing."""
    from modelyard.data.steps import duplicate_plan

    return duplicate_plan(_store(request), _ref(name, version), near=near)


@router.post("/datasets/{name}/versions/{version}/steps", status_code=201,
             responses=documented(DatasetSteps, 404, 413, 422, status=201))
def apply_steps(name: str, version: str, body: Steps, request: Request,
                principal: Principal = Depends(require("editor"))):
    """Apply preprocessing operators in order; each makes a new version with lineage to its parent."""
    from modelyard.data.steps import apply_steps as run_steps

    made = run_steps(_store(request), _ref(name, version), body.steps, created_by=principal.name)
    return {"schema": "modelyard.dataset-steps/1", "versions": [v.to_dict() for v in made]}
