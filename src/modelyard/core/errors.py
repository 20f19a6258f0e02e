"""The error hierarchy every layer raises and every shell (CLI, REST) renders.

Each error carries a stable machine ``code`` and the HTTP ``status`` the REST API answers with, so the CLI prints
one line and the API returns ``{"error": {"code": ..., "message": ...}}`` without a mapping table elsewhere.
"""

from __future__ import annotations


class ModelyardError(Exception):
    """Base class. ``str(err)`` is the one line a user sees."""

    code = "error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(ModelyardError):
    """The caller sent something malformed (a spec field, a path, an option)."""

    code = "invalid_input"
    status = 422


class NotFound(ModelyardError):
    code = "not_found"
    status = 404


class Conflict(ModelyardError):
    """The request is valid but contradicts the current state (e.g. cancelling a finished job)."""

    code = "conflict"
    status = 409


class Unauthorized(ModelyardError):
    code = "unauthorized"
    status = 401


class Forbidden(ModelyardError):
    code = "forbidden"
    status = 403


class PayloadTooLarge(ModelyardError):
    code = "payload_too_large"
    status = 413


class WorkspaceError(ModelyardError):
    """The workspace (database, blob store, home folder) cannot be used as it is."""

    code = "workspace_error"
    status = 500


class IntegrityError(ModelyardError):
    """A stored artifact no longer matches its recorded hash."""

    code = "integrity_error"
    status = 500


class Unavailable(ModelyardError):
    """An optional stack or device is missing; the message says which and why."""

    code = "unavailable"
    status = 503
