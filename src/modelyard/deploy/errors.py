"""Errors of the serving path that more than one module raises (the protocol, image decoding, the model server)."""

from __future__ import annotations

from modelyard.core.errors import ModelyardError


class BadRequest(ModelyardError):
    """The request does not fit the model: 400 with a message naming the input."""

    code = "bad_request"
    status = 400
