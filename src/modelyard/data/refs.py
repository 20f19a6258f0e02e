"""``NAME@VERSION`` references to dataset versions (``iris@2``, ``iris@V002``, ``iris@latest``, ``iris``)."""

from __future__ import annotations

import re

from modelyard.core.errors import InvalidInput
from modelyard.core.ids import MAX_STORED_INT

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_VERSION = re.compile(r"^(?:[vV]0*)?([0-9]+)$")


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid dataset/model name, else raise ``InvalidInput`` naming ``what``."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"{what} {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def parse_ref(ref: str, what: str = "dataset") -> tuple[str, int | None]:
    """Split ``NAME@VERSION`` into ``(name, version)``; version ``None`` means the latest.

    Example: ``parse_ref("iris@V002") -> ("iris", 2)``; ``parse_ref("iris") -> ("iris", None)``.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{what}: expected NAME@VERSION, got {ref!r}")
    name, sep, version = ref.strip().partition("@")
    check_name(name, what)
    if not sep or version in ("", "latest"):
        return name, None
    match = _VERSION.match(version)
    if not match or not 1 <= int(match.group(1)) <= MAX_STORED_INT:
        raise InvalidInput(f"{what} {ref!r}: the version must be a number like 3 or V003, or 'latest'")
    return name, int(match.group(1))


def format_version(version: int) -> str:
    """ExeML-style display name of a version number: ``3 -> "V003"``."""
    return f"V{version:03d}"
