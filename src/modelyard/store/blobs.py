"""Content-addressed blob store on a local folder: ``<root>/sha256/ab/cdef...``.

Writes are atomic (temp file in the same folder, fsync, rename, fsync of the folder) and deduplicated; reads
re-hash and raise ``IntegrityError`` when a blob no longer matches its name, so a tampered or rotted file is
reported, never served. Blob files are 0400 and folders 0700: readable by the owner only, and never rewritten.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelyard.core.errors import IntegrityError, InvalidInput, NotFound, WorkspaceError

CHUNK = 1024 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int

    def to_dict(self) -> dict:
        return {"digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class BlobStat:
    size: int
    mtime: float


BLOB_MODE = 0o400


def _private_dir(path: Path) -> None:
    """``mkdir -p`` with 0700 for every folder it creates (``mkdir``'s own mode is filtered by the umask)."""
    if path.is_dir():
        return
    _private_dir(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """A sha256-addressed store. ``digest`` arguments accept ``"sha256:<hex>"`` or the bare hex."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- naming -------------------------------------------------------------------------------------------------
    @staticmethod
    def normalize(digest: str) -> str:
        hexdigest = digest.removeprefix("sha256:").lower()
        if not _DIGEST.match(hexdigest):
            raise InvalidInput(f"not a sha256 digest: {digest!r}")
        return hexdigest

    def path_for(self, digest: str) -> Path:
        hexdigest = self.normalize(digest)
        return self.root / "sha256" / hexdigest[:2] / hexdigest[2:]

    # -- writing ------------------------------------------------------------------------------------------------
    def put_stream(self, stream: BinaryIO, max_bytes: int | None = None) -> BlobInfo:
        """Store everything read from ``stream``; at most ``max_bytes`` when given."""
        staging = self.root / "tmp"
        try:
            _private_dir(staging)
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by `with handle` below
                dir=staging, prefix="blob-", delete=False)
        except OSError as exc:
            raise WorkspaceError(f"cannot write to blob store {self.root}: {exc.strerror}") from exc
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
                handle.flush()
                os.fsync(handle.fileno())
            digest = hasher.hexdigest()
            final = self.path_for(digest)
            if final.exists() and final.stat().st_size == size:
                try:
                    # storing it again makes it fresh: garbage collection's grace period then protects it until
                    # the rows that will refer to it are written
                    os.utime(final)
                except FileNotFoundError:  # collected a moment ago: publish this copy instead
                    pass
                else:
                    tmp_path.unlink()
                    return BlobInfo(digest, size)
            _private_dir(final.parent)
            os.chmod(tmp_path, BLOB_MODE)
            os.replace(tmp_path, final)
            _fsync_dir(final.parent)
            return BlobInfo(digest, size)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise

    def put_bytes(self, data: bytes) -> BlobInfo:
        import io

        digest = hashlib.sha256(data).hexdigest()
        if self._refresh(digest, len(data)):  # stored already (an uploaded file being imported): no second write
            return BlobInfo(digest, len(data))
        return self.put_stream(io.BytesIO(data))

    def _refresh(self, digest: str, size: int | None = None) -> bool:
        """True when the blob is stored (with ``size``, when given); its time is renewed, so garbage collection's
        grace period protects it as it would a fresh upload."""
        final = self.path_for(digest)
        try:
            if size is not None and final.stat().st_size != size:
                return False
            os.utime(final)
        except FileNotFoundError:
            return False
        return True

    def put_file(self, path: str | Path) -> BlobInfo:
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no such file: {path}")
        with open(path, "rb") as handle:
            return self.put_stream(handle)

    # -- reading ------------------------------------------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def stat(self, digest: str) -> BlobStat | None:
        """Size and last write (or re-upload) time, for garbage collection; None when the blob is not stored."""
        try:
            info = self.path_for(digest).stat()
        except FileNotFoundError:
            return None
        return BlobStat(info.st_size, info.st_mtime)

    def delete(self, digest: str) -> None:
        """Remove one blob (garbage collection only); nothing when it is gone already."""
        self.path_for(digest).unlink(missing_ok=True)

    def describe(self) -> str:
        """Where the blobs live, for messages."""
        return str(self.root)

    def info(self, digest: str) -> BlobInfo:
        path = self.path_for(digest)
        if not path.is_file():
            raise NotFound(f"blob sha256:{self.normalize(digest)} not found")
        return BlobInfo(self.normalize(digest), path.stat().st_size)

    def hash_file(self, path: Path) -> str:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
        return hasher.hexdigest()

    def verify(self, digest: str) -> BlobInfo:
        """Re-hash one blob; ``IntegrityError`` when it does not match its name."""
        info = self.info(digest)
        actual = self.hash_file(self.path_for(digest))
        if actual != info.digest:
            raise IntegrityError(
                f"blob sha256:{info.digest} is corrupt: its content now hashes to sha256:{actual}"
            )
        return info

    def read_bytes(self, digest: str) -> bytes:
        """The verified content of a blob (for small blobs; use ``open_verified`` for large ones)."""
        data = self.path_for(digest).read_bytes() if self.exists(digest) else None
        if data is None:
            raise NotFound(f"blob sha256:{self.normalize(digest)} not found")
        if hashlib.sha256(data).hexdigest() != self.normalize(digest):
            raise IntegrityError(f"blob sha256:{self.normalize(digest)} is corrupt: content does not match its hash")
        return data

    def iter_verified(self, digest: str) -> Iterator[bytes]:
        """Verify a blob now (raising ``IntegrityError``/``NotFound`` before anything is sent), then return an
        iterator over its chunks."""
        path = self.path_for(self.verify(digest).digest)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk

        return chunks()

    def copy_to(self, digest: str, dest: str | Path) -> Path:
        """Write a verified copy of a blob to ``dest`` atomically."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name[:100]}.tmp-{os.getpid()}")  # a long name plus a suffix overflows 255
        hasher = hashlib.sha256()
        try:
            with open(tmp, "wb") as out, open(self.path_for(digest), "rb") as src:
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != self.normalize(digest):
                raise IntegrityError(
                    f"blob sha256:{self.normalize(digest)} is corrupt: content does not match its hash"
                )
            os.replace(tmp, dest)
        except FileNotFoundError as exc:
            raise NotFound(f"blob sha256:{self.normalize(digest)} not found") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def missing(self, digests: list[str]) -> list[str]:
        """The digests (as given) this store does not hold: what a client still has to upload. Those it holds are
        renewed (see ``_refresh``): a client that skips uploading them is about to refer to them."""
        return [d for d in digests if not self._refresh(d)]

    def materialize(self, files: dict[str, str], dest: str | Path, link: bool = False) -> Path:
        """Write verified copies of ``relative name -> digest`` into the folder ``dest``; returns ``dest``.

        Names must be relative and stay inside ``dest`` (checked again here, whoever validated them before).
        ``link``: hard-link the (read-only) blob files instead of copying where the file system allows, for a
        scratch folder that is only read and then deleted; the reader must hash what it reads.
        """
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for name, digest in files.items():
            target = (root / name).resolve()
            if not target.is_relative_to(root) or target == root:
                raise InvalidInput(f"file name {name!r} leaves its folder")
            if target.is_file() and target.stat().st_size == self.info(digest).size:
                continue
            if link:
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(self.path_for(digest), target)
                    continue
                except OSError:  # another file system, or links not allowed: copy
                    pass
            self.copy_to(digest, target)
        return dest

    def iter_digests(self) -> Iterator[str]:
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for shard in sorted(base.iterdir()):
            if shard.is_dir() and len(shard.name) == 2:
                for item in sorted(shard.iterdir()):
                    candidate = shard.name + item.name
                    if _DIGEST.match(candidate):
                        yield candidate

