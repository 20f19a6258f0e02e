"""What the SDK's modules share about HTTP: an error response becomes the ``ModelyardError`` of its status.

Kept apart from ``client.py`` so resource modules (``services.py``, ...) that read a raw response need not import
the ``Client`` that composes them."""

from __future__ import annotations

import httpx

from modelyard.core import errors
from modelyard.core.errors import ModelyardError

_BY_STATUS: dict[int, type[ModelyardError]] = {
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    422: errors.InvalidInput,
    503: errors.Unavailable,
}


def raise_for(response: httpx.Response) -> None:
    """Raise the error a non-2xx response carries (``{"error": {"code", "message"}}``); return on success."""
    if response.is_success:
        return
    try:
        body = response.json()["error"]
        code, message = body.get("code", "error"), body.get("message", response.reason_phrase)
    except (ValueError, KeyError, TypeError):
        code, message = "error", f"HTTP {response.status_code}: {response.text[:200]}"
    cls = _BY_STATUS.get(response.status_code, ModelyardError)
    raise cls(message, code=code, status=response.status_code)
