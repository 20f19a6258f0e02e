"""Identifiers and timestamps shared by every layer."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def new_id(prefix: str) -> str:
    """A sortable, unique id: ``prefix_`` + 10 chars of milliseconds + 10 random chars (ULID-like).

    Example: ``new_id("job") -> "job_01jd3k9x2mtq8c4w0z7r"``.
    """
    millis = int(time.time() * 1000)
    stamp = "".join(_ALPHABET[(millis >> (5 * i)) & 31] for i in reversed(range(10)))
    rand = int.from_bytes(os.urandom(7), "big")
    tail = "".join(_ALPHABET[(rand >> (5 * i)) & 31] for i in range(10))
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
