"""Bearer-token authentication and role checks as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from modelyard.core.errors import Forbidden
from modelyard.edge.devices import DEVICE_CREDENTIAL_PREFIX
from modelyard.store.tokens import TokenStore, role_allows


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    token_id: str | None = None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def require(role: str):
    """A dependency that authenticates the request and demands at least ``role``."""

    def dependency(request: Request) -> Principal:
        secret = _bearer(request)
        local = request.app.state.local_principal
        if secret is None and local is not None:
            principal = local
        elif secret and secret.startswith(DEVICE_CREDENTIAL_PREFIX):
            raise Forbidden("a device credential can only call the device protocol (/edge/v1), not the user API")
        else:
            info = TokenStore(request.app.state.workspace.engine).authenticate(secret)
            principal = Principal(info.name, info.role, info.id)
        if not role_allows(principal.role, role):
            raise Forbidden(f"this needs the {role} role; token '{principal.name}' has {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency
