"""Names and references: ``NAME``, ``NAME@3``, ``NAME@production`` and the same behind ``modelyard://``.

A version is a positive integer; an alias starts with a letter, so the two never collide. ``NAME`` alone and
``NAME@latest`` mean the newest version.

Example::

    ref = parse_ref("modelyard://resnet@production")
    ref.name, ref.alias, ref.version   # ('resnet', 'production', None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from modelyard.core.errors import InvalidInput
from modelyard.core.ids import MAX_STORED_INT

SCHEME = "modelyard://"
LATEST = "latest"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")


def check_name(name: str, what: str = "model name") -> str:
    """``name`` when it is a valid model or service name, else ``InvalidInput`` saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"{what} {name!r} must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidInput(
            f"alias {alias!r} must start with a letter and hold only letters, digits, '.', '_' or '-' (at most 100)"
        )
    if alias == LATEST:
        raise InvalidInput(f"alias {LATEST!r} is reserved: it always means the newest version")
    return alias


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference. Exactly one of ``version`` and ``alias`` is set, unless both are None (newest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def is_registry_ref(text: object) -> bool:
    """True for ``modelyard://...`` strings: what spec-accepting commands check before reading a file."""
    return isinstance(text, str) and text.startswith(SCHEME)


def parse_ref(text: str) -> ModelRef:
    """Parse ``[modelyard://]NAME[@VERSION|@ALIAS]``; ``InvalidInput`` names what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("model reference must look like NAME, NAME@VERSION or NAME@ALIAS")
    body = text.strip().removeprefix(SCHEME)
    name, sep, selector = body.partition("@")
    check_name(name)
    if not sep:
        return ModelRef(name)
    if not selector:
        raise InvalidInput(f"model reference {text!r}: nothing after '@' (give a version number or an alias)")
    if selector.isascii() and selector.isdigit():  # str.isdigit alone takes '²', which int() refuses
        version = int(selector)
        if version < 1:
            raise InvalidInput(f"model reference {text!r}: versions start at 1")
        if version > MAX_STORED_INT:
            raise InvalidInput(f"model reference {text!r}: versions go up to {MAX_STORED_INT}")
        return ModelRef(name, version=version)
    if selector == LATEST:
        return ModelRef(name)
    if not _ALIAS.match(selector):
        raise InvalidInput(f"model reference {text!r}: {selector!r} is neither a version number nor an alias")
    return ModelRef(name, alias=selector)
