"""Standard JSON in and out: what every Modelyard API and service accepts and answers.

Python's ``json`` reads and writes ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON: a browser's
``JSON.parse`` rejects them, and PostgreSQL's JSONB refuses them. And it recurses without a limit a caller controls,
so a body nested 1,000 deep ends in ``RecursionError``. The rules here:

* a request body is strict JSON: no ``NaN``/``Infinity`` literals, no number that overflows a double, at most
  :data:`MAX_DEPTH` levels of nesting (:func:`loads_strict`);
* where a non-finite float is a legitimate value (a metric that went NaN), it travels as one of the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (:func:`encode_float` / :func:`decode_float`);
* a stored free-form mapping (lineage, preprocessing, job specs...) holds only finite numbers
  (:func:`check_finite`).

Example::

    >>> loads_strict(b'{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> encode_float(float("nan")), decode_float("-Infinity")
    ('NaN', -inf)
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from modelyard.core.errors import ModelyardError

MAX_DEPTH = 64
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_KEEP = b'"[]{}'
_DROP = bytes(b for b in range(256) if b not in _KEEP)


class JSONRefused(ModelyardError):
    """A body that is not JSON or nests too deep: 400 naming what is wrong."""

    code = "bad_request"
    status = 400


class JSONTooDeep(JSONRefused):
    """JSON nested deeper than the limit: 400."""


class NotFiniteJSON(JSONRefused):
    """JSON that holds ``NaN``/``Infinity`` literals or a number beyond a double: 422, nothing is stored."""

    code = "invalid_input"
    status = 422


def encode_float(value: float) -> float | str:
    """A float as standard JSON: finite ones as they are, the others as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def decode_float(value: Any) -> Any:
    """The inverse of :func:`encode_float`; any other value is returned unchanged."""
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    return value


def nests_deeper_than(body: bytes | str, limit: int = MAX_DEPTH) -> bool:
    """True when the arrays and objects of a JSON text nest more than ``limit`` levels deep.

    Reads the text without parsing it (brackets inside strings do not count), mostly in C-speed passes, so it can
    run before ``json.loads`` -- which would recurse into a hostile body until ``RecursionError``.
    """
    data = body.encode() if isinstance(body, str) else bytes(body)
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    if b"\\" in data:
        data = _ESCAPE.sub(b"", data)  # an escaped quote must not end a string
    data = _STRING.sub(b"", data.translate(None, _DROP)).translate(None, b'"')
    depth = 0
    for char in data:
        depth += 1 if char in (0x5B, 0x7B) else -1
        if depth > limit:
            return True
    return False


def _refuse_constant(name: str):
    raise NotFiniteJSON(f"{name} is not JSON: send null for a missing value, or the string \"{name}\" where a "
                      "non-finite number is meant")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotFiniteJSON(f"number {text[:40]} is out of range for a double")
    return value


def loads_strict(body: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a request body as strict JSON.

    Raises:
        NotFiniteJSON: ``NaN``/``Infinity`` literals, or a number beyond a double's range.
        JSONTooDeep: nesting deeper than ``max_depth``.
        JSONRefused: text that is not JSON at all.
    """
    if nests_deeper_than(body, max_depth):
        raise JSONTooDeep(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except JSONRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"malformed JSON: {exc}") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise JSONRefused(f"malformed JSON: {exc}") from None


def check_finite(value: Any, where: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a mapping or list holding NaN or +-Infinity anywhere, or nested deeper than ``max_depth``.

    Raises:
        InvalidInput: naming the first offending path, e.g. ``lineage.metrics.loss``.
    """
    from modelyard.core.errors import InvalidInput

    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidInput(f"{path}: {item} is not a finite number (JSON has no NaN or Infinity)")
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise InvalidInput(f"{path}: nested deeper than {max_depth} levels")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, f"{path}.{key}" if isinstance(item, dict) else f"{path}[{key}]", depth + 1)
                         for key, child in pairs)
        elif hasattr(item, "item") and hasattr(item, "dtype"):  # numpy scalars
            stack.append((item.item(), path, depth))
