"""Safe extraction of ``.zip`` / ``.tar[.gz|.bz2|.xz]`` / ``.tgz`` archives of image folders.

Every member is checked before anything is written: absolute paths, ``..`` components, links and device files are
refused with a message naming the member, and the total unpacked size is capped, so an archive can neither write
outside its folder nor fill the disk.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
MAX_UNPACKED_BYTES = 20 * 1024**3
MAX_MEMBERS = 2_000_000


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


def safe_extract(archive: Path, dest: Path, display_name: str | None = None) -> Path:
    """Extract ``archive`` into the empty folder ``dest`` after checking every member; returns ``dest``.

    Raises:
        InvalidInput: not a readable archive, a member with an absolute or ``..`` path, a link or special file,
            too many members or too many bytes.
    """
    dest.mkdir(parents=True, exist_ok=True)
    shown = Path(display_name or archive.name)
    try:
        if shown.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, shown)
        else:
            _extract_tar(archive, dest, shown)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{shown.name}: not a readable archive ({exc})") from exc
    return dest


def _extract_zip(source: Path, dest: Path, archive: Path) -> None:
    with zipfile.ZipFile(source) as bundle:
        members = bundle.infolist()
        _check_count(archive, len(members))
        total = 0
        for info in members:
            _checked_name(archive, info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode == 0o120000:
                raise InvalidInput(f"{archive.name}: member {info.filename!r} is a symbolic link; refusing the archive")
            total += info.file_size
            _check_size(archive, total)
        for info in members:
            if info.is_dir():
                continue
            target = dest.joinpath(*_checked_name(archive, info.filename).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _extract_tar(source: Path, dest: Path, archive: Path) -> None:
    with tarfile.open(source) as bundle:
        members = bundle.getmembers()
        _check_count(archive, len(members))
        total = 0
        for member in members:
            _checked_name(archive, member.name)  # refuses absolute paths and ../
            if member.issym() or member.islnk():
                raise InvalidInput(f"{archive.name}: member {member.name!r} is a link; refusing the archive")
            if not (member.isfile() or member.isdir()):
                raise InvalidInput(f"{archive.name}: member {member.name!r} is not a regular file; refusing the "
                                   "archive")
            total += member.size
            _check_size(archive, total)
        for member in members:
            if member.isdir():
                continue
            target = dest.joinpath(*PurePosixPath(member.name.replace("\\", "/")).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            src = bundle.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _check_count(archive: Path, count: int) -> None:
    if count > MAX_MEMBERS:
        raise InvalidInput(f"{archive.name}: {count} members is more than the limit of {MAX_MEMBERS}")


def _check_size(archive: Path, total: int) -> None:
    if total > MAX_UNPACKED_BYTES:
        raise InvalidInput(f"{archive.name}: unpacks to more than {MAX_UNPACKED_BYTES} bytes")
