"""Datasets: the list, a dataset's versions with lineage, one version's statistics and trainability check, a sample
gallery (images) or a paged table (tables), upload-to-import, and the preprocessing steps as a form.
REST twins: ``POST /api/v1/blobs`` + ``POST /api/v1/datasets/import``, ``GET /api/v1/datasets...``,
``.../stats``, ``.../manifest``, ``POST .../steps``. The console's import and steps call those routes' functions, so
every rule (names, formats, unsafe archives, nothing stored on failure) is the API's."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from modelyard.core.errors import InvalidInput, ModelyardError, NotFound
from modelyard.server.auth import Principal
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, render

router = APIRouter()
DATASET_SORTS = ("name", "kind", "versions", "items", "created")
GALLERY = 48
TABLE_ROWS = 25
IMAGE_KINDS = ("image-classification", "object-detection", "multilabel-classification")
IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"BM": "image/bmp", b"GIF8": "image/gif"}


def _store(request: Request):
    from modelyard.data.datasets import DatasetStore

    return DatasetStore(request.app.state.workspace)


@router.get("/datasets")
def datasets_page(request: Request, viewer: Viewer = Depends(page())):
    paging = Paging.from_request(request, DATASET_SORTS, "name", default_desc=False)
    search = (request.query_params.get("q") or "").strip()
    items = _store(request).list()
    if search:
        items = [d for d in items if search.lower() in d["name"].lower()]
    key = {"created": "created_at"}.get(paging.sort, paging.sort)
    items.sort(key=lambda d: (d[key] is None, d[key] or 0), reverse=paging.desc)
    return render(request, "datasets.html", viewer, title="Datasets", datasets=items[paging.offset:paging.offset
                  + paging.per], total=len(items), paging=paging, search=search)


@router.get("/datasets/import")
def import_page(request: Request, viewer: Viewer = Depends(page("editor"))):
    return render(request, "dataset_import.html", viewer, title="Import a dataset", nav="datasets",
                  max_bytes=request.app.state.workspace.settings.max_body_bytes, form={})


@router.post("/datasets/import")
def import_upload(request: Request, file: UploadFile = File(...), name: str = Form(...), kind: str = Form("auto"),
                  label: str = Form(""), task: str = Form("auto"), validation_fraction: float = Form(0.2),
                  description: str = Form(""), format: str = Form(""), viewer: Viewer = Depends(action("editor"))):
    from modelyard.server.routes_data import ImportDataset, import_dataset

    form = {"name": name, "kind": kind, "label": label, "task": task, "validation_fraction": validation_fraction,
            "description": description, "format": format}
    try:
        filename = Path(file.filename or "").name
        if not filename:
            raise InvalidInput("choose a file to upload")
        blob = request.app.state.workspace.blobs.put_stream(file.file)
        body = ImportDataset(name=name.strip(), source="sha256:" + blob.digest, filename=filename, kind=kind,
                             label=label.strip() or None, task=task, validation_fraction=validation_fraction,
                             description=description, format=format or None)
        made = import_dataset(body, request, Principal(viewer.name, viewer.role, viewer.session.token_id))
    except (ModelyardError, ValueError) as exc:
        message = exc.message if isinstance(exc, ModelyardError) else str(exc).splitlines()[-1]
        return render(request, "dataset_import.html", viewer, status_code=getattr(exc, "status", 422),
                      title="Import a dataset", nav="datasets", error=message, form=form,
                      max_bytes=request.app.state.workspace.settings.max_body_bytes)
    return redirect(f"/datasets/{made['name']}/versions/{made['version']}", f"Imported {made['ref']}.")


@router.get("/datasets/{name}")
def dataset_page(request: Request, name: str, viewer: Viewer = Depends(page())):
    versions = list(reversed(_store(request).versions(name)))
    return render(request, "dataset.html", viewer, title=f"Dataset {name}", nav="datasets", name=name,
                  versions=versions)


def _table_page(store, version, offset: int) -> dict:
    frame, split = store.load_table(version)
    shown = frame.iloc[offset:offset + TABLE_ROWS]
    return {"columns": [str(c) for c in shown.columns], "rows": shown.astype(object).where(shown.notna(), None)
            .values.tolist(), "split": split[offset:offset + TABLE_ROWS].tolist(), "total": len(frame)}


@router.get("/datasets/{name}/versions/{version}")
def version_page(request: Request, name: str, version: int, viewer: Viewer = Depends(page())):
    store = _store(request)
    found = store.get(f"{name}@{version}")
    check = store.check(found)
    try:
        start = max(0, int(request.query_params.get("start", 0)))
    except ValueError:
        start = 0
    gallery = table = texts = None
    if found.kind == "text-classification":
        entries = store.manifest(found)["entries"]
        texts = {"items": entries[start:start + TABLE_ROWS], "total": len(entries)}
    elif found.kind in IMAGE_KINDS:
        entries = store.manifest(found)["entries"]
        gallery = {"items": [{"index": i, **e} for i, e in enumerate(entries[start:start + GALLERY], start)],
                   "total": len(entries)}
    else:
        table = _table_page(store, found, start)
    children = [v for v in store.versions(name) if (v.lineage or {}).get("parent") == found.ref]
    return render(request, "dataset_version.html", viewer, title=found.ref, nav="datasets", v=found,
                  check=check.to_dict(), gallery=gallery, table=table, texts=texts, start=start,
                  step=GALLERY if gallery else TABLE_ROWS, children=children)


@router.get("/datasets/{name}/versions/{version}/items/{index}")
def item_image(request: Request, name: str, version: int, index: int, _: Viewer = Depends(page())):
    """One image of an image dataset, read from the blob store (verified); served only when its bytes are an image
    format the gallery shows (nosniff is set on every response)."""
    store = _store(request)
    found = store.get(f"{name}@{version}")
    if found.kind not in IMAGE_KINDS:
        raise NotFound(f"{found.ref} is a table; it has no images")
    entries = store.manifest(found)["entries"]
    if not 0 <= index < len(entries):
        raise NotFound(f"{found.ref} has no item {index}")
    data = store.blobs.read_bytes(entries[index]["digest"])
    media = next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)
    if media is None:
        raise NotFound(f"item {index} of {found.ref} is not an image the console can show")
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


@router.post("/datasets/{name}/versions/{version}/steps")
def apply_step(request: Request, name: str, version: int, op: str = Form(...), strategy: str = Form("median"),
               columns: str = Form(""), size: int = Form(64), near: bool = Form(False),
               viewer: Viewer = Depends(action("editor"))):
    from modelyard.server.routes_data import Steps, apply_steps

    step: dict = {"op": op}
    if op == "impute":
        step["strategy"] = strategy
    elif op == "drop-columns":
        step["columns"] = [c.strip() for c in columns.split(",") if c.strip()]
    elif op == "resize":
        step["height"] = step["width"] = size
    elif op == "dedupe" and near:
        step["near"] = True
    made = apply_steps(name, str(version), Steps(steps=[step]), request,
                       Principal(viewer.name, viewer.role, viewer.session.token_id))
    new = made["versions"][-1]
    return redirect(f"/datasets/{name}/versions/{new['version']}", f"{op} made {new['ref']}.")
