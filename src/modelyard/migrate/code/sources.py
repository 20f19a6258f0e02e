"""Safe input for code analysis: a folder, a single file, or a .zip / .tar(.gz) archive.

Nothing here follows a symlink out of the project or into a loop, extracts an archive entry outside its folder,
or reads an unbounded amount of data: archives with ``..`` or absolute entries are refused as a whole, links in
archives are not extracted, and files above the size limit are listed as skipped with the reason.

Example::

    with open_source("project.zip") as tree:
        for source in tree.files:
            text, note = read_source(source, tree.limits)
"""

from __future__ import annotations

import fnmatch
import io
import os
import shutil
import stat
import tarfile
import tempfile
import tokenize
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput, NotFound, PayloadTooLarge

# Folders that are never part of the project's own code.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", ".tox", ".nox", "node_modules", ".mypy_cache",
     ".pytest_cache", ".ruff_cache", ".eggs", ".ipynb_checkpoints", ".modelyard-migrate"}
)
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
BINARY_SNIFF_BYTES = 8192

_REQUIREMENT_GLOBS = ("requirements*.txt", "requirements*.in", "constraints*.txt", "pyproject.toml", "setup.cfg",
                      "environment*.yml", "environment*.yaml", "conda*.yml", "conda*.yaml", "Pipfile")
_DOCKER_GLOBS = ("Dockerfile", "Dockerfile.*", "*.dockerfile", "Containerfile")
_SHELL_GLOBS = ("*.sh", "*.bash", "*.zsh", "*.slurm", "*.sbatch")
_CUDA_GLOBS = ("*.cu", "*.cuh")


@dataclass(frozen=True)
class Limits:
    """Size limits for one analysis.

    Args:
        max_file_bytes: larger files are skipped with a note. Default 5 MiB.
        max_total_bytes: most bytes read from a folder or extracted from an archive. Default 1 GiB.
        max_files: most files considered. Default 200,000.
    """

    max_file_bytes: int = 5 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    max_files: int = 200_000


@dataclass(frozen=True)
class SourceFile:
    """A candidate file: ``rel`` is relative to the root with ``/`` separators; ``kind`` says how to scan it."""

    rel: str
    path: Path
    kind: str
    size: int


@dataclass
class SourceTree:
    """The files of one input. Use as a context manager: an extracted archive is deleted on exit."""

    root: Path
    display_root: str
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel, reason) for candidates not scanned
    limits: Limits = field(default_factory=Limits)
    is_archive: bool = False
    single_file: bool = False
    _tempdir: str | None = None

    def __enter__(self) -> SourceTree:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None


def file_kind(name: str) -> str | None:
    """How to scan a file by its name: python, cuda, requirements, dockerfile, shell; None to ignore it."""
    if name.endswith(".py"):
        return "python"
    for kind, globs in (("cuda", _CUDA_GLOBS), ("requirements", _REQUIREMENT_GLOBS), ("dockerfile", _DOCKER_GLOBS),
                        ("shell", _SHELL_GLOBS)):
        if any(fnmatch.fnmatchcase(name, g) for g in globs):
            return kind
    return None


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def open_source(path: str | Path, limits: Limits | None = None) -> SourceTree:
    """List the candidate files of a folder, file or archive.

    Args:
        path: project folder, single source file, or .zip/.tar.gz/.tgz/.tar archive.
        limits: size limits; default ``Limits()``.

    Returns:
        A ``SourceTree`` (a context manager). Raises ``NotFound`` for a missing path and ``InvalidInput`` for an
        unsafe archive or a file that is neither a source file nor an archive.
    """
    limits = limits or Limits()
    given = Path(path).expanduser()
    if not given.exists() and not given.is_symlink():
        raise NotFound(f"path not found: {path}")
    if given.is_symlink() and not given.exists():
        raise InvalidInput(f"{path} is a broken symlink or a symlink loop")
    if is_archive(given):
        tmp = tempfile.mkdtemp(prefix="modelyard-src-")
        try:
            skipped = extract_archive(given, Path(tmp), limits)
            tree = SourceTree(Path(tmp), str(given.resolve()), limits=limits, is_archive=True, _tempdir=tmp)
            tree.skipped.extend(skipped)
            _walk(tree)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return tree
    if given.is_file():
        kind = file_kind(given.name)
        if kind is None:
            raise InvalidInput(
                f"{path} is neither a project folder, a source file (.py, .cu, requirements, Dockerfile, .sh) "
                f"nor an archive ({', '.join(ARCHIVE_SUFFIXES)})"
            )
        resolved = given.resolve()
        tree = SourceTree(resolved.parent, str(resolved), limits=limits, single_file=True)
        tree.files.append(SourceFile(resolved.name, resolved, kind, resolved.stat().st_size))
        return tree
    if not given.is_dir():
        raise InvalidInput(f"{path} is not a regular file or folder")
    tree = SourceTree(given.resolve(), str(given.resolve()), limits=limits)
    _walk(tree)
    return tree


def _walk(tree: SourceTree) -> None:
    """Collect candidate files under ``tree.root`` without following directory symlinks."""
    root = tree.root
    stack = [root]
    total = 0
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            tree.skipped.append((_rel(root, Path(folder)), f"cannot list folder: {exc.strerror or exc}"))
            continue
        for entry in entries:
            entry_path = Path(entry.path)
            rel = _rel(root, entry_path)
            if entry.is_symlink():
                reason, target = _check_symlink(root, entry_path)
                if reason:
                    if target is None or file_kind(entry.name) or target.is_dir():
                        tree.skipped.append((rel, reason))
                    continue
                if target is None or not target.is_file():
                    continue
                kind = file_kind(entry.name)
                if kind:
                    size = target.stat().st_size
                    tree.files.append(SourceFile(rel, target, kind, size))
                continue
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in SKIP_DIRS and not entry.name.endswith(".egg-info"):
                    stack.append(entry_path)
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            kind = file_kind(entry.name)
            if kind is None:
                continue
            if len(tree.files) >= tree.limits.max_files:
                raise PayloadTooLarge(f"more than {tree.limits.max_files} source files under {tree.display_root}")
            size = entry.stat(follow_symlinks=False).st_size
            total += min(size, tree.limits.max_file_bytes)
            if total > tree.limits.max_total_bytes:
                raise PayloadTooLarge(
                    f"more than {tree.limits.max_total_bytes} bytes of source under {tree.display_root}"
                )
            tree.files.append(SourceFile(rel, entry_path, kind, size))
    tree.files.sort(key=lambda f: f.rel)


def _check_symlink(root: Path, link: Path) -> tuple[str | None, Path | None]:
    """(reason to skip, resolved target). Loops, dangling links, links out of the root and to folders are skipped."""
    try:
        target = link.resolve(strict=True)
    except RuntimeError:
        return "symlink loop", None
    except OSError as exc:
        if getattr(exc, "errno", None) == 40:  # ELOOP
            return "symlink loop", None
        return "dangling symlink", None
    if target != root and root not in target.parents:
        return "symlink points outside the project; not followed", target
    if target.is_dir():
        return "symlinked folder not followed", target
    return None, target


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _safe_member_name(name: str) -> str:
    """The normalised relative path of an archive entry; raises ``InvalidInput`` for one that escapes."""
    cleaned = name.replace("\\", "/")
    pure = PurePosixPath(cleaned)
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":") or ".." in pure.parts:
        raise InvalidInput(f"archive entry {name!r} points outside the archive folder; refusing the archive")
    parts = [p for p in pure.parts if p not in ("", ".")]
    return "/".join(parts)


def extract_archive(archive: Path, dest: Path, limits: Limits) -> list[tuple[str, str]]:
    """Extract a .zip or tar archive into ``dest`` safely.

    Every entry name is checked before anything is written (one bad entry refuses the whole archive); links,
    devices and files above ``limits.max_file_bytes`` are not extracted and are returned as (name, reason).
    The bytes actually written are counted against ``limits.max_total_bytes``, so a lying header cannot
    inflate past it.
    """
    skipped: list[tuple[str, str]] = []
    budget = [limits.max_total_bytes]
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_count(len(infos), limits, archive)
                names = [_safe_member_name(i.filename) for i in infos]
                for info, name in zip(infos, names, strict=True):
                    mode = info.external_attr >> 16
                    if not name or info.is_dir():
                        continue
                    if stat.S_ISLNK(mode):
                        skipped.append((name, "symlink in archive; not extracted"))
                        continue
                    if info.file_size > limits.max_file_bytes:
                        skipped.append((name, f"larger than {limits.max_file_bytes} bytes; not extracted"))
                        continue
                    with zf.open(info) as stream:
                        _copy_bounded(stream, dest / name, budget, limits, archive)
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                _check_count(len(members), limits, archive)
                names = [_safe_member_name(m.name) for m in members]
                for member, name in zip(members, names, strict=True):
                    if not name or member.isdir():
                        continue
                    if member.issym() or member.islnk():
                        skipped.append((name, "link in archive; not extracted"))
                        continue
                    if not member.isfile():
                        skipped.append((name, "special file in archive; not extracted"))
                        continue
                    if member.size > limits.max_file_bytes:
                        skipped.append((name, f"larger than {limits.max_file_bytes} bytes; not extracted"))
                        continue
                    stream = tf.extractfile(member)
                    if stream is None:
                        continue
                    with stream:
                        _copy_bounded(stream, dest / name, budget, limits, archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise InvalidInput(f"{archive} is not a readable archive: {exc}") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot extract {archive}: {exc}") from exc
    return skipped


def _check_count(count: int, limits: Limits, archive: Path) -> None:
    if count > limits.max_files:
        raise PayloadTooLarge(f"{archive} has {count} entries, more than the limit of {limits.max_files}")


def _copy_bounded(stream, target: Path, budget: list[int], limits: Limits, archive: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(target, "wb") as out:
        while chunk := stream.read(1024 * 1024):
            written += len(chunk)
            budget[0] -= len(chunk)
            if written > limits.max_file_bytes or budget[0] < 0:
                raise PayloadTooLarge(f"{archive} extracts to more than the allowed size; refusing it")
            out.write(chunk)


@dataclass(frozen=True)
class SourceText:
    """A file's decoded text (None when skipped), why it was skipped or how it was decoded, and its encoding."""

    text: str | None
    note: str | None = None
    skipped: bool = False
    encoding: str = "utf-8"


def read_source(source: SourceFile, limits: Limits) -> SourceText:
    """Read and decode one candidate file within the limits.

    Python files honour a PEP 263 coding cookie; other text is UTF-8. Binary files (a NUL byte near the start)
    and files above ``limits.max_file_bytes`` are skipped; undecodable bytes are replaced and noted.
    """
    try:
        size = source.path.stat().st_size
        if size > limits.max_file_bytes:
            return SourceText(None, f"skipped: {size} bytes is above the {limits.max_file_bytes}-byte limit", True)
        with open(source.path, "rb") as handle:
            data = handle.read(limits.max_file_bytes + 1)
    except OSError as exc:
        return SourceText(None, f"skipped: cannot read ({exc.strerror or exc})", True)
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return SourceText(None, "skipped: binary file", True)
    encoding = "utf-8"
    if source.kind == "python":
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        except SyntaxError:
            encoding = "utf-8"
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
        return SourceText(text, None, False, encoding)
    except (UnicodeDecodeError, LookupError):
        return SourceText(data.decode("utf-8", errors="replace"), "not valid UTF-8: undecodable bytes replaced",
                          False, "replace")
