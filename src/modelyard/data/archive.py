"""Safe extraction of ``.zip`` / ``.tar[.gz|.bz2|.xz]`` / ``.tgz`` archives of image folders.

Every member is checked before anything is written: absolute paths, ``..`` components, links and device files are
refused with a message naming the member. Sizes are limited twice: by what the headers claim (a fast refusal) and by
the bytes actually counted while decompressing (headers can lie), against three limits (``ArchiveLimits``, from the
workspace settings): the total unpacked size, each member's size, and the compression ratio, so a few-MB zip bomb
is refused within its first megabytes instead of filling memory or disk.
"""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_MEMBERS = 2_000_000
RATIO_FLOOR_BYTES = 1024 * 1024  # the ratio is judged only past this many unpacked bytes: tiny files compress well
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Args:
        max_bytes: total unpacked bytes (setting ``max_archive_bytes``, default 20 GiB).
        max_member_bytes: unpacked bytes of one member (setting ``max_archive_member_bytes``, default 1 GiB).
        max_ratio: unpacked bytes per compressed byte, per member (zip) and over the whole archive (setting
            ``max_archive_ratio``, default 100; JPEG/PNG barely compress, a file of zeros compresses ~1000x).
    """

    max_bytes: int = 20 * 1024**3
    max_member_bytes: int = 1024**3
    max_ratio: float = 100.0

    @classmethod
    def from_settings(cls, settings) -> ArchiveLimits:
        return cls(settings.max_archive_bytes, settings.max_archive_member_bytes, settings.max_archive_ratio)


class _Budget:
    """Counts unpacked bytes as they are written and refuses the archive the moment a limit is passed."""

    def __init__(self, archive: Path, limits: ArchiveLimits, compressed_total: int):
        self.archive, self.limits, self.compressed_total = archive, limits, max(1, compressed_total)
        self.total = 0

    def check_header(self, name: str, size: int, compressed: int | None) -> None:
        self._check_member(name, size, compressed)

    def copy(self, name: str, source, target: Path, compressed: int | None) -> None:
        written = 0
        with open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                self.total += len(chunk)
                self._check_member(name, written, compressed)
                if self.total > self.limits.max_bytes:
                    raise InvalidInput(f"{self.archive.name}: unpacks to more than {self.limits.max_bytes} bytes "
                                       "(setting max_archive_bytes); refusing the archive")
                if self.total > RATIO_FLOOR_BYTES and self.total / self.compressed_total > self.limits.max_ratio:
                    raise InvalidInput(f"{self.archive.name}: unpacks to more than {self.limits.max_ratio:g} times "
                                       "its size (a decompression bomb?; setting max_archive_ratio); refusing the "
                                       "archive")
                out.write(chunk)

    def _check_member(self, name: str, size: int, compressed: int | None) -> None:
        if size > self.limits.max_member_bytes:
            raise InvalidInput(f"{self.archive.name}: member {name!r} unpacks to more than "
                               f"{self.limits.max_member_bytes} bytes (setting max_archive_member_bytes); refusing "
                               "the archive")
        if compressed is not None and size > RATIO_FLOOR_BYTES and size / max(1, compressed) > self.limits.max_ratio:
            raise InvalidInput(f"{self.archive.name}: member {name!r} unpacks to more than "
                               f"{self.limits.max_ratio:g} times its compressed size (a decompression bomb?; "
                               "setting max_archive_ratio); refusing the archive")


def is_archive(path: Path) -> bool:
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in ARCHIVE_SUFFIXES)


def _checked_name(archive: Path, name: str) -> PurePosixPath:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or name.startswith(("/", "\\")) or ".." in pure.parts or (
        pure.parts and ":" in pure.parts[0]
    ):
        raise InvalidInput(f"{archive.name}: member {name!r} would be written outside the extraction folder "
                           "(path traversal); refusing the archive")
    return pure


def safe_extract(archive: Path, dest: Path, display_name: str | None = None,
                 limits: ArchiveLimits | None = None) -> Path:
    """Extract ``archive`` into the empty folder ``dest`` after checking every member; returns ``dest``.

    Args:
        archive: the archive file.
        dest: the folder to fill; the caller removes it when this raises.
        display_name: the name to show in messages and to pick the format by (default ``archive.name``).
        limits: size limits (default ``ArchiveLimits()``).

    Raises:
        InvalidInput: not a readable archive, a member with an absolute or ``..`` path, a link or special file,
            too many members, a member, the total or the compression ratio over its limit.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shown = Path(display_name or archive.name)
    budget = _Budget(shown, limits or ArchiveLimits(), archive.stat().st_size)
    try:
        if shown.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, shown, budget)
        else:
            _extract_tar(archive, dest, shown, budget)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{shown.name}: not a readable archive ({exc})") from exc
    return dest


def _extract_zip(source: Path, dest: Path, archive: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(source) as bundle:
        members = bundle.infolist()
        _check_count(archive, len(members))
        total = 0
        for info in members:
            _checked_name(archive, info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise InvalidInput(f"{archive.name}: member {info.filename!r} is a symbolic link; refusing the archive")
            budget.check_header(info.filename, info.file_size, info.compress_size)
            total += info.file_size
            _check_size(archive, total, budget)
        for info in members:
            if info.is_dir():
                continue
            target = dest.joinpath(*_checked_name(archive, info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as src:
                budget.copy(info.filename, src, target, info.compress_size)


def _extract_tar(source: Path, dest: Path, archive: Path, budget: _Budget) -> None:
    with tarfile.open(source) as bundle:
        members, total = [], 0
        for member in bundle:  # header by header: a huge first member is refused before its data is read past
            members.append(member)
            _check_count(archive, len(members))
            _checked_name(archive, member.name)  # refuses absolute paths and ../
            if member.issym() or member.islnk():
                raise InvalidInput(f"{archive.name}: member {member.name!r} is a link; refusing the archive")
            if not (member.isfile() or member.isdir()):
                raise InvalidInput(f"{archive.name}: member {member.name!r} is not a regular file; refusing the "
                                   "archive")
            budget.check_header(member.name, member.size, None)  # a tar's compression is over the whole stream
            total += member.size
            _check_size(archive, total, budget)
        for member in members:
            if member.isdir():
                continue
            target = dest.joinpath(*PurePosixPath(member.name.replace("\\", "/")).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = bundle.extractfile(member)
            if src is None:
                continue
            with src:
                budget.copy(member.name, src, target, None)


def _check_count(archive: Path, count: int) -> None:
    if count > MAX_MEMBERS:
        raise InvalidInput(f"{archive.name}: {count} members is more than the limit of {MAX_MEMBERS}")


def _check_size(archive: Path, total: int, budget: _Budget) -> None:
    """What the headers claim so far, against the total and the whole archive's compression ratio."""
    limits = budget.limits
    if total > limits.max_bytes:
        raise InvalidInput(f"{archive.name}: unpacks to more than {limits.max_bytes} bytes (setting "
                           "max_archive_bytes); refusing the archive")
    if total > RATIO_FLOOR_BYTES and total / budget.compressed_total > limits.max_ratio:
        raise InvalidInput(f"{archive.name}: unpacks to more than {limits.max_ratio:g} times its size (a "
                           "decompression bomb?; setting max_archive_ratio); refusing the archive")
