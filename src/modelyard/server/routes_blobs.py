"""Blobs: upload raw bytes (content-addressed), download verified bytes."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.server.auth import Principal, require

router = APIRouter(tags=["blobs"])
SPOOL_BYTES = 8 * 1024 * 1024  # an upload larger than this waits on disk, not in memory
MAX_DIGESTS_PER_QUERY = 10_000


class DigestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digests: list[str] = Field(max_length=MAX_DIGESTS_PER_QUERY, description="sha256 digests the client holds")


@router.post("/blobs", status_code=201)
async def upload_blob(request: Request, _: Principal = Depends(require("editor"))):
    """Store the raw request body; answers its ``sha256:`` digest and size. Bodies over the limit get 413."""
    from starlette.concurrency import run_in_threadpool

    blobs = request.app.state.workspace.blobs
    staging = blobs.root / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=staging) as buffer:
        async for chunk in request.stream():
            buffer.write(chunk)
        buffer.seek(0)
        info = await run_in_threadpool(blobs.put_stream, buffer)
    return {"schema": "modelyard.blob/1", "digest": "sha256:" + info.digest, "size": info.size}


@router.post("/blobs/missing")
def missing_blobs(body: DigestQuery, request: Request, _: Principal = Depends(require("editor"))):
    """Which of ``digests`` the store does not hold yet: what a client still has to upload (resumable uploads)."""
    blobs = request.app.state.workspace.blobs
    for digest in body.digests:
        blobs.normalize(digest)
    return {"schema": "modelyard.blob-missing/1", "missing": blobs.missing(body.digests)}


@router.get("/blobs/{digest}")
def download_blob(digest: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The blob's bytes, verified against its digest first (a corrupt blob answers 500 integrity_error)."""
    store = request.app.state.workspace.blobs
    chunks = store.iter_verified(digest)
    info = store.info(digest)
    return StreamingResponse(
        chunks, media_type="application/octet-stream",
        headers={"Content-Length": str(info.size), "ETag": f'"sha256:{info.digest}"'},
    )
