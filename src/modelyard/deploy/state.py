"""Where a service's runtime files live, and the small files the supervisor, replicas and API share:

``<home>/services/``
    ``supervisor.lock`` (held by the one supervisor), ``supervisor.json`` (its pid), ``supervisor.log``,
    ``internal.key`` (lets the platform's own proxy call non-public services), ``tokens.revoked`` (replaced on
    every token revocation, so replicas drop their token cache at once), and per service ``<name>/``:
    ``state.json`` (replicas and health, written by the supervisor), ``events.log`` (what the supervisor did),
    ``access.log`` (one JSON line per request, rotated by size: ``access.log.1`` ... ``.5``),
    ``replica-<rev>-<k>.log`` (a replica's stdout/stderr),
    ``metrics/`` (Prometheus multiprocess files), ``rev-<n>/`` (replica configs and load errors).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

INTERNAL_HEADER = "x-modelyard-internal"
KEY_HEADER = "x-modelyard-key"


def services_root(home: Path) -> Path:
    return Path(home) / "services"


def service_dir(home: Path, name: str) -> Path:
    return services_root(home) / name


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def internal_key(home: Path) -> str:
    """The workspace's internal key (created 0600 on first use)."""
    path = services_root(home) / "internal.key"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    tmp = path.with_name(f".internal.key.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key)
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()


def note_token_revoked(home: Path) -> None:
    """Tell every replica of the workspace that a token was revoked (they compare the marker's stat per request)."""
    path = services_root(home) / "tokens.revoked"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tokens.revoked.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(f"{time.time_ns()}\n", encoding="ascii")
    os.replace(tmp, path)  # a new inode each time: a change shows even where mtimes are coarse


def token_revocations(home: Path) -> tuple | None:
    """The revocation marker's identity (None before the first revocation); it changes with every revocation."""
    try:
        stat = os.stat(services_root(home) / "tokens.revoked")
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def append_event(home: Path, name: str, message: str) -> None:
    """One timestamped line in the service's events log."""
    path = service_dir(home, name) / "events.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{stamp} {message}\n")


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block, data = 64 * 1024, b""
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:]) + ("\n" if text else "")
