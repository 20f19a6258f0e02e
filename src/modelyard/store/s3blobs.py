"""The content-addressed blob store on S3-compatible object storage (AWS S3, SeaweedFS, MinIO, Ceph).

Same interface and guarantees as the local :class:`~modelyard.store.blobs.BlobStore`:

- content addressing: ``s3://bucket/prefix/sha256/ab/cdef...``;
- atomic publish: a blob is hashed into a local staging file first, then uploaded to its final key; an S3 PUT (and
  the completion of a multipart upload) makes the whole object visible at once or not at all, so a reader never sees
  half a blob;
- verification on read: every read re-hashes what came over the wire and raises ``IntegrityError`` on a mismatch.

Large artifacts go up in 16 MiB multipart parts, several at once; every request is retried with exponential backoff
and jitter (botocore's "standard" mode). Wrong credentials, a missing bucket or an unreachable endpoint end in one
``WorkspaceError`` line naming the store.

The local ``root`` (``<home>/blobs``) only holds staging files and chunked upload sessions.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from modelyard.core.errors import IntegrityError, InvalidInput, NotFound, WorkspaceError
from modelyard.store.blobs import CHUNK, BlobInfo, BlobStat, BlobStore, _private_dir

MULTIPART_BYTES = 16 * 1024 * 1024
MAX_ATTEMPTS = 6
# answers that mean "your configuration is wrong", not "try again"
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                     "ExpiredToken", "403", "Forbidden"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    if not url.startswith("s3://"):
        raise InvalidInput(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise InvalidInput(f"{url!r} names no bucket (s3://bucket/prefix)")
    return bucket, prefix.strip("/")


class S3BlobStore(BlobStore):
    """Args:
        url: ``s3://bucket[/prefix]``.
        root: local folder for staging files and upload sessions (``<home>/blobs``).
        endpoint_url: the S3 server (default ``$AWS_ENDPOINT_URL`` or AWS).
        region: default ``$AWS_DEFAULT_REGION`` or ``us-east-1``.
        access_key_id, secret_access_key: default the standard AWS variables and files.
    """

    def __init__(self, url: str, root: str | Path, endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None):
        super().__init__(root)
        self.url = url.rstrip("/")
        self.bucket, self.prefix = parse_s3_url(url)
        self.endpoint_url = endpoint_url
        self.region = region
        self._credentials = (access_key_id, secret_access_key)
        self._client = None
        self._lock = threading.Lock()

    # -- the connection -----------------------------------------------------------------------------------------
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                key, secret = self._credentials
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
                    region_name=self.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                    aws_access_key_id=key or None,
                    aws_secret_access_key=secret or None,
                    config=Config(retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"}, connect_timeout=5,
                                  read_timeout=120, signature_version="s3v4",
                                  s3={"addressing_style": "path"}),
                )
            return self._client

    def _transfer_config(self):
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES,
                              max_concurrency=4, use_threads=True)

    def key_for(self, digest: str) -> str:
        hexdigest = self.normalize(digest)
        return "/".join(p for p in (self.prefix, "sha256", hexdigest[:2], hexdigest[2:]) if p)

    def _error(self, exc: Exception, digest: str | None = None) -> Exception:
        """One clear error for a failed request; ``NotFound`` for a missing blob."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"S3 blob store {self.url}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return WorkspaceError(f"{where}: bucket {self.bucket!r} does not exist")
            if code in ("NoSuchKey", "404", "NotFound") and digest is not None:
                return NotFound(f"blob sha256:{self.normalize(digest)} not found")
            if code in ("404", "NotFound"):
                return WorkspaceError(f"{where}: bucket {self.bucket!r} does not exist")
            if code in _CREDENTIAL_CODES:
                return WorkspaceError(f"{where}: access denied ({code}): check s3_access_key_id/s3_secret_access_key "
                                      "or the AWS credentials")
            message = exc.response.get("Error", {}).get("Message") or str(exc)
            return WorkspaceError(f"{where}: {code}: {message}")
        if isinstance(exc, NoCredentialsError):
            return WorkspaceError(f"{where}: no credentials (set s3_access_key_id/s3_secret_access_key or "
                                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
        if isinstance(exc, BotoCoreError):
            return WorkspaceError(f"{where}: {str(exc).splitlines()[0]}")
        return exc

    def _call(self, method: str, digest: str | None = None, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, digest) from exc

    def _head(self, digest: str) -> dict | None:
        try:
            return self._call("head_object", digest, Bucket=self.bucket, Key=self.key_for(digest))
        except NotFound:
            return None

    def check_bucket(self) -> None:
        """Raise ``WorkspaceError`` when the bucket is missing, the credentials are wrong or the endpoint is down."""
        self._call("head_bucket", Bucket=self.bucket)

    def create_bucket(self) -> None:
        """Create the bucket (for tests and first setup); nothing when it exists."""
        from botocore.exceptions import ClientError

        try:
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(exc) from exc

    # -- writing ------------------------------------------------------------------------------------------------
    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> BlobInfo:
        """Hash ``stream`` into a local staging file, then publish it under its digest (unless stored already)."""
        staging = self.root / "tmp"
        try:
            _private_dir(staging)
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by `with handle` below
                dir=staging, prefix="s3blob-", delete=False)
        except OSError as exc:
            raise WorkspaceError(f"cannot stage a blob in {staging}: {exc.strerror}") from exc
        tmp_path = Path(handle.name)
        hasher, size = hashlib.sha256(), 0
        try:
            with handle:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise InvalidInput(f"blob exceeds the limit of {max_bytes} bytes")
                    hasher.update(chunk)
                    handle.write(chunk)
            digest = hasher.hexdigest()
            if not self._refresh(digest, size):
                self._upload(tmp_path, digest)
            return BlobInfo(digest, size)
        finally:
            tmp_path.unlink(missing_ok=True)

    def _upload(self, path: Path, digest: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(path), self.bucket, self.key_for(digest), Config=self._transfer_config())
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from exc
        except S3UploadFailedError as exc:  # boto3 wraps the ClientError of a (multipart) upload
            cause = exc.__context__ if isinstance(exc.__context__, ClientError | BotoCoreError) else None
            raise (self._error(cause) if cause else WorkspaceError(f"S3 blob store {self.url}: {exc}")) from exc

    def put_bytes(self, data: bytes) -> BlobInfo:
        import io

        return self.put_stream(io.BytesIO(data))

    def _refresh(self, digest: str, size: int | None = None) -> bool:
        head = self._head(digest)
        if head is None or (size is not None and head["ContentLength"] != size):
            return False
        # copying an object onto itself renews its modification time: garbage collection's grace period then
        # protects it as it would a fresh upload (S3 has no utime)
        key = self.key_for(digest)
        self._call("copy_object", digest, Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                   MetadataDirective="REPLACE", Metadata={"refreshed": "1"})
        return True

    # -- reading ------------------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return self._head(digest) is not None

    def info(self, digest: str) -> BlobInfo:
        head = self._head(digest)
        if head is None:
            raise NotFound(f"blob sha256:{self.normalize(digest)} not found")
        return BlobInfo(self.normalize(digest), int(head["ContentLength"]))

    def stat(self, digest: str) -> BlobStat | None:
        head = self._head(digest)
        if head is None:
            return None
        return BlobStat(int(head["ContentLength"]), head["LastModified"].timestamp())

    def delete(self, digest: str) -> None:
        self._call("delete_object", digest, Bucket=self.bucket, Key=self.key_for(digest))

    def _download(self, digest: str, out: BinaryIO) -> int:
        """Stream a blob into ``out`` while hashing it; ``IntegrityError`` when it does not match its name."""
        hexdigest = self.normalize(digest)
        body = self._call("get_object", digest, Bucket=self.bucket, Key=self.key_for(digest))["Body"]
        hasher, size = hashlib.sha256(), 0
        try:
            for chunk in body.iter_chunks(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
                size += len(chunk)
        finally:
            body.close()
        if hasher.hexdigest() != hexdigest:
            raise IntegrityError(f"blob sha256:{hexdigest} is corrupt: its content now hashes to "
                                 f"sha256:{hasher.hexdigest()}")
        return size

    def verify(self, digest: str) -> BlobInfo:
        class _Discard:
            def write(self, chunk):
                return len(chunk)

        return BlobInfo(self.normalize(digest), self._download(digest, _Discard()))

    def read_bytes(self, digest: str) -> bytes:
        import io

        buffer = io.BytesIO()
        self._download(digest, buffer)
        return buffer.getvalue()

    def iter_verified(self, digest: str) -> Iterator[bytes]:
        staging = self.root / "tmp"
        _private_dir(staging)
        handle = tempfile.TemporaryFile(dir=staging)  # noqa: SIM115 - closed when the iterator ends
        try:
            self._download(digest, handle)
        except BaseException:
            handle.close()
            raise
        handle.seek(0)

        def chunks() -> Iterator[bytes]:
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks()

    def copy_to(self, digest: str, dest: str | Path) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name[:100]}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                self._download(digest, out)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def materialize(self, files: dict[str, str], dest: str | Path, link: bool = False) -> Path:
        return super().materialize(files, dest, link=False)  # nothing local to link to

    def iter_digests(self) -> Iterator[str]:
        base = f"{self.prefix}/sha256/" if self.prefix else "sha256/"
        paginator = self.client.get_paginator("list_objects_v2")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                for item in page.get("Contents", []):
                    shard, _, rest = item["Key"][len(base):].partition("/")
                    candidate = shard + rest
                    if len(shard) == 2 and len(candidate) == 64 and all(c in "0123456789abcdef" for c in candidate):
                        yield candidate
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc) from exc

    def describe(self) -> str:
        return self.url + (f" at {self.endpoint_url}" if self.endpoint_url else "")
