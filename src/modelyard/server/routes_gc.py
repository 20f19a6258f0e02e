"""Blob garbage collection (admin) and pins (editor), beside ``routes_blobs``: ``/pins`` rather than
``/blobs/pins`` so no path can be read as a digest."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.server.auth import Principal, require
from modelyard.server.responses import BlobUnpinned, documented

router = APIRouter(tags=["blobs"])


class Collect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(default=True, description="List what would be deleted; delete nothing (the default).")
    grace_s: float | None = Field(default=None, ge=0, description="Keep blobs written less than this many seconds "
                                                                   "ago (default: setting blob_gc_grace_s).")


class Pin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=1000, description="Why it is kept.")


@router.post("/blobs/gc", responses=documented(None, 409, 413, 422))
def collect_garbage(body: Collect, request: Request, _: Principal = Depends(require("admin"))):
    """Delete blobs that no dataset, model version, run, unfinished job, job result or pin refers to and that are
    older than the grace period (``modelyard.blob-gc/1``). Admin only: it is the one call that frees data."""
    from modelyard.store.gc import collect_garbage as collect

    result = collect(request.app.state.workspace, dry_run=body.dry_run, grace_s=body.grace_s)
    return result.to_dict()


@router.get("/pins")
def list_pins(request: Request, _: Principal = Depends(require("viewer"))):
    from modelyard.store.gc import list_pins as pins

    return {"schema": "modelyard.blob-pins/1", "items": pins(request.app.state.workspace)}


@router.put("/pins/{digest}", responses=documented(None, 404, 413, 422))
def pin_blob(digest: str, body: Pin, request: Request, principal: Principal = Depends(require("editor"))):
    """Keep a stored blob through garbage collection (404 if it is not stored)."""
    from modelyard.store.gc import pin

    return {"schema": "modelyard.blob-pin/1",
            **pin(request.app.state.workspace, digest, note=body.note, created_by=principal.name)}


@router.delete("/pins/{digest}", responses=documented(BlobUnpinned, 404, 422))
def unpin_blob(digest: str, request: Request, principal: Principal = Depends(require("editor"))):
    """Let garbage collection delete the blob again: only the token (by name) that pinned it, or an admin (403)."""
    from modelyard.store.gc import unpin

    unpin(request.app.state.workspace, digest, by=None if principal.role == "admin" else principal.name)
    return {"schema": "modelyard.blob-unpinned/1", "digest": "sha256:" + digest.removeprefix("sha256:").lower()}
