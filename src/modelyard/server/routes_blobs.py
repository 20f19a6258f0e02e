"""Blobs: upload raw bytes (content-addressed), download verified bytes; which digests are missing; and upload
sessions for files larger than one request body (chunks appended at an offset, so an interrupted upload resumes)."""

from __future__ import annotations

import json
import re
import secrets
import tempfile

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.server.auth import Principal, require
from modelyard.server.responses import Blob, BlobMissing, BlobUpload, documented

router = APIRouter(tags=["blobs"])
SPOOL_BYTES = 8 * 1024 * 1024  # an upload larger than this waits on disk, not in memory
MAX_DIGESTS_PER_QUERY = 10_000


_UPLOAD_ID = re.compile(r"^upl_[0-9a-f]{32}$")


class CompleteUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digest: str = Field(description="the sha256 digest of the whole file, checked before it is stored")


class DigestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digests: list[str] = Field(max_length=MAX_DIGESTS_PER_QUERY, description="sha256 digests the client holds")


@router.post("/blobs", status_code=201, responses=documented(Blob, 413, status=201))
async def upload_blob(request: Request, _: Principal = Depends(require("editor"))):
    """Store the raw request body; answers its ``sha256:`` digest and size. Bodies over the limit get 413."""
    from starlette.concurrency import run_in_threadpool

    from modelyard.core.errors import WorkspaceError

    blobs = request.app.state.workspace.blobs
    staging = blobs.root / "tmp"
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # as the blob store itself says it, not a bare 500
        raise WorkspaceError(f"cannot write to blob store {blobs.root}: {exc.strerror}") from exc
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=staging) as buffer:
        async for chunk in request.stream():
            buffer.write(chunk)
        buffer.seek(0)
        info = await run_in_threadpool(blobs.put_stream, buffer)
    return {"schema": "modelyard.blob/1", "digest": "sha256:" + info.digest, "size": info.size}


@router.post("/blobs/missing", responses=documented(BlobMissing, 413, 422))
def missing_blobs(body: DigestQuery, request: Request, _: Principal = Depends(require("editor"))):
    """Which of ``digests`` the store does not hold yet: what a client still has to upload (resumable uploads)."""
    blobs = request.app.state.workspace.blobs
    for digest in body.digests:
        blobs.normalize(digest)
    return {"schema": "modelyard.blob-missing/1", "missing": blobs.missing(body.digests)}


def _owner(principal: Principal) -> dict:
    return {"token_id": principal.token_id, "name": principal.name}


def _upload_path(request: Request, upload_id: str, principal: Principal):
    """The session's file, for the token that opened it (or an admin): another token may not read, extend or
    complete it (403)."""
    from modelyard.core.errors import Forbidden, NotFound

    if not _UPLOAD_ID.match(upload_id):
        raise NotFound(f"upload {upload_id!r} not found")
    path = request.app.state.workspace.blobs.root / "uploads" / upload_id
    if not path.is_file():
        raise NotFound(f"upload {upload_id} not found (finished, or never started)")
    try:
        owner = json.loads(path.with_suffix(".owner").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        owner = None  # a session without its owner record is the admin's alone
    if owner != _owner(principal) and principal.role != "admin":
        raise Forbidden(f"upload {upload_id} was opened by another token")
    return path


def _upload_state(request: Request, upload_id: str, path) -> dict:
    return {"schema": "modelyard.blob-upload/1", "id": upload_id, "offset": path.stat().st_size,
            "chunk_bytes": request.app.state.workspace.settings.max_body_bytes}


@router.post("/blobs/uploads", status_code=201, responses=documented(BlobUpload, status=201))
def start_upload(request: Request, principal: Principal = Depends(require("editor"))):
    """Start an upload session for a file larger than one request body. ``chunk_bytes`` is the largest chunk
    the server takes; send chunks with ``PUT /blobs/uploads/{id}?offset=N``, then ``POST .../complete``. Only
    the token that opened the session (or an admin) may use it; ``blobs gc`` expires sessions left untouched
    longer than ``blob_gc_grace_s``."""
    folder = request.app.state.workspace.blobs.root / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    upload_id = "upl_" + secrets.token_hex(16)
    # the owner record first: a session file never exists without it
    (folder / upload_id).with_suffix(".owner").write_text(json.dumps(_owner(principal)), encoding="utf-8")
    (folder / upload_id).touch()
    return _upload_state(request, upload_id, folder / upload_id)


@router.get("/blobs/uploads/{upload_id}", responses=documented(BlobUpload, 404))
def upload_state(upload_id: str, request: Request, principal: Principal = Depends(require("editor"))):
    """How many bytes the server holds: where a resumed upload continues."""
    return _upload_state(request, upload_id, _upload_path(request, upload_id, principal))


@router.put("/blobs/uploads/{upload_id}", responses=documented(BlobUpload, 404, 409, 413, 422))
async def append_chunk(upload_id: str, request: Request, offset: int = Query(ge=0),
                       principal: Principal = Depends(require("editor"))):
    """Append the body at ``offset``, which must be the bytes held so far (409 with the right offset otherwise).
    A chunk that would take the session past ``max_upload_bytes`` gets 413 and is not kept."""
    from modelyard.core.errors import Conflict, PayloadTooLarge

    path = _upload_path(request, upload_id, principal)
    limit = request.app.state.workspace.settings.max_upload_bytes
    held = path.stat().st_size
    if offset != held:
        raise Conflict(f"upload {upload_id} holds {held} bytes; send the chunk at offset={held}")

    def too_large() -> PayloadTooLarge:
        return PayloadTooLarge(f"upload {upload_id}: this chunk takes the upload past max_upload_bytes={limit} "
                               f"bytes (it holds {held}); the chunk was not kept")

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and held + int(declared) > limit:
        raise too_large()
    with open(path, "ab") as handle:
        written = 0
        async for chunk in request.stream():
            written += len(chunk)
            if held + written > limit:  # a body without (or lying about) its length
                handle.truncate(held)
                raise too_large()
            handle.write(chunk)
    return _upload_state(request, upload_id, path)


@router.post("/blobs/uploads/{upload_id}/complete", status_code=201,
             responses=documented(Blob, 404, 413, 422, status=201))
def complete_upload(upload_id: str, body: CompleteUpload, request: Request,
                    principal: Principal = Depends(require("editor"))):
    """Check the whole file against ``digest`` and store it; the session ends either way."""
    from modelyard.core.errors import InvalidInput

    blobs = request.app.state.workspace.blobs
    expected = blobs.normalize(body.digest)
    path = _upload_path(request, upload_id, principal)
    try:
        actual = blobs.hash_file(path)
        if actual != expected:
            raise InvalidInput(f"upload {upload_id}: the bytes received hash to sha256:{actual}, not "
                               f"sha256:{expected}; start the upload again")
        info = blobs.put_file(path)
    finally:
        path.unlink(missing_ok=True)
        path.with_suffix(".owner").unlink(missing_ok=True)
    return {"schema": "modelyard.blob/1", "digest": "sha256:" + info.digest, "size": info.size}


@router.get("/blobs/{digest}", response_class=StreamingResponse,
            responses=documented(None, 404, 422, 500, media_type="application/octet-stream",
                                 description="The blob's bytes."))
def download_blob(digest: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The blob's bytes, verified against its digest first (a corrupt blob answers 500 integrity_error)."""
    store = request.app.state.workspace.blobs
    chunks = store.iter_verified(digest)
    info = store.info(digest)
    return StreamingResponse(
        chunks, media_type="application/octet-stream",
        headers={"Content-Length": str(info.size), "ETag": f'"sha256:{info.digest}"'},
    )
