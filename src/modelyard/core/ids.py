"""Identifiers and timestamps shared by every layer."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
# the largest version, revision, step or offset a request may name: the database's INTEGER columns are 32-bit on
# PostgreSQL (and a larger Python int overflows SQLite's binding), so anything above is refused as input
MAX_STORED_INT = 2**31 - 1


_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the previous id made by this process


def new_id(prefix: str) -> str:
    """A sortable, unique id: ``prefix_`` + 10 chars of milliseconds + 10 chars of a random part (ULID-like).

    Ids made by one process sort in creation order even within one millisecond: the random part of the next id
    in the same millisecond is the previous one plus one (ULID's monotonic mode).

    Example: ``new_id("job") -> "job_01jd3k9x2mtq8c4w0z7r"``.
    """
    global _last
    with _lock:
        millis = int(time.time() * 1000)
        last_millis, last_rand = _last
        if millis <= last_millis:
            millis, rand = last_millis, (last_rand + 1) % (1 << 50)
        else:
            rand = int.from_bytes(os.urandom(7), "big") >> 6  # 50 bits: ten base32 chars
        _last = (millis, rand)
    stamp = "".join(_ALPHABET[(millis >> (5 * i)) & 31] for i in reversed(range(10)))
    tail = "".join(_ALPHABET[(rand >> (5 * i)) & 31] for i in reversed(range(10)))
    return f"{prefix}_{stamp}{tail}"


def utcnow() -> datetime:
    """Timezone-aware UTC now, truncated to microseconds (what every database stores)."""
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")
