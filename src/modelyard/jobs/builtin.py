"""Built-in job kinds that exercise the machinery on real work."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import IntegrityError, NotFound
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.core.settings import Settings
from modelyard.store.blob_stores import open_blob_store


class BlobVerifySpec(BaseModel):
    """Re-hash blobs of the workspace's store.

    Args:
        digests: only these blobs (``sha256:...`` or hex); default every blob.
    """

    model_config = ConfigDict(extra="forbid")
    digests: list[str] | None = Field(default=None, max_length=100_000)


def verify_blobs(spec: BlobVerifySpec, ctx: JobContext) -> dict:
    store = open_blob_store(Settings.load(ctx.home))
    digests = [store.normalize(d) for d in spec.digests] if spec.digests else list(store.iter_digests())
    ok, corrupt, missing, total_bytes = 0, [], [], 0
    for index, digest in enumerate(digests):
        if ctx.cancelled():
            ctx.log("cancel requested; stopping")
            break
        try:
            total_bytes += store.verify(digest).size
            ok += 1
        except IntegrityError as exc:
            corrupt.append(digest)
            ctx.log(f"CORRUPT {exc}")
        except NotFound:
            missing.append(digest)
            ctx.log(f"MISSING sha256:{digest}")
        ctx.progress((index + 1) / max(1, len(digests)), f"verified {index + 1}/{len(digests)}")
    ctx.log(f"verified {ok} blob(s), {total_bytes} bytes; {len(corrupt)} corrupt, {len(missing)} missing")
    return {
        "schema": "modelyard.blob-verify/1",
        "checked": len(digests),
        "ok": ok,
        "bytes": total_bytes,
        "corrupt": ["sha256:" + d for d in corrupt],
        "missing": ["sha256:" + d for d in missing],
        "healthy": not corrupt and not missing,
    }


BLOB_VERIFY = JobKind(
    "blob.verify",
    BlobVerifySpec,
    verify_blobs,
    idempotent=True,
    description="Re-hash blobs in the blob store and report any that are corrupt or missing.",
)


class SleepSpec(BaseModel):
    """Args:
        seconds: how long to sleep, in steps of ``step`` seconds with progress.
        fail: raise at the end (to exercise failure paths).
    """

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(default=1.0, ge=0, le=3600)
    step: float = Field(default=0.1, gt=0, le=60)
    fail: bool = False


def sleep(spec: SleepSpec, ctx: JobContext) -> dict:
    deadline = time.monotonic() + spec.seconds
    started = time.monotonic()
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(spec.step, left))
        ctx.progress(min(1.0, (time.monotonic() - started) / max(spec.seconds, 1e-9)), "sleeping")
    if spec.fail:
        raise RuntimeError("failed on request (fail=true)")
    ctx.log(f"slept {spec.seconds}s")
    return {"slept": spec.seconds}


SLEEP = JobKind(
    "system.sleep",
    SleepSpec,
    sleep,
    idempotent=False,
    description="Sleep with progress (for checking a deployment's workers and for tests).",
)
