"""Blobs: upload raw bytes (content-addressed), download verified bytes."""

from __future__ import annotations

import io

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from modelyard.server.auth import Principal, require

router = APIRouter(tags=["blobs"])


@router.post("/blobs", status_code=201)
async def upload_blob(request: Request, _: Principal = Depends(require("editor"))):
    """Store the raw request body; answers its ``sha256:`` digest and size. Bodies over the limit get 413."""
    from starlette.concurrency import run_in_threadpool

    buffer = io.BytesIO()
    async for chunk in request.stream():
        buffer.write(chunk)
    buffer.seek(0)
    info = await run_in_threadpool(request.app.state.workspace.blobs.put_stream, buffer)
    return {"schema": "modelyard.blob/1", "digest": "sha256:" + info.digest, "size": info.size}


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
