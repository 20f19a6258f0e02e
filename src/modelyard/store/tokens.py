"""API tokens: random secrets shown once, stored only as sha256 hashes, each with a role.

Roles are ordered: ``viewer`` (read) < ``editor`` (read + write) < ``admin`` (+ tokens).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from modelyard.core.ids import isoformat, new_id, utcnow
from modelyard.store.db import as_utc
from modelyard.store.schema import tokens

ROLES = ("viewer", "editor", "admin")
TOKEN_PREFIX = "myd_"
# last_used_at is a courtesy, not an audit log: write it at most this often per token.
_LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    role: str
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "prefix": self.prefix,
            "created_by": self.created_by,
            "created_at": isoformat(self.created_at),
            "last_used_at": isoformat(self.last_used_at),
            "revoked_at": isoformat(self.revoked_at),
            "active": self.active,
        }


def _info(row) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        prefix=row.prefix,
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        last_used_at=as_utc(row.last_used_at),
        revoked_at=as_utc(row.revoked_at),
    )


class TokenStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, name: str, role: str, created_by: str = "") -> tuple[TokenInfo, str]:
        """Create a token; returns its info and the secret, which is never stored and never shown again."""
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("token name must be 1 to 200 characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        row = {
            "id": new_id("tok"),
            "name": name,
            "role": role,
            "token_hash": hash_token(secret),
            "prefix": secret[:10],
            "created_by": created_by,
            "created_at": now,
        }
        with self.engine.begin() as conn:
            conn.execute(tokens.insert().values(**row))
        return self.get(row["id"]), secret

    def get(self, token_id: str) -> TokenInfo:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"token {token_id} not found")
        return _info(row)

    def list(self, include_revoked: bool = True) -> list[TokenInfo]:
        query = sa.select(tokens).order_by(tokens.c.created_at, tokens.c.id)
        if not include_revoked:
            query = query.where(tokens.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_info(row) for row in conn.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(tokens)).scalar_one()

    def revoke(self, token_id: str) -> TokenInfo:
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.id == token_id)).first()
            if row is None:
                raise NotFound(f"token {token_id} not found")
            if row.revoked_at is not None:
                raise Conflict(f"token {token_id} is already revoked")
            conn.execute(tokens.update().where(tokens.c.id == token_id).values(revoked_at=utcnow()))
        return self.get(token_id)

    def authenticate(self, secret: str | None) -> TokenInfo:
        """The active token whose secret this is; ``Unauthorized`` for a missing, unknown or revoked one."""
        if not secret:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.token_hash == hash_token(secret))).first()
        if row is None:
            raise Unauthorized("invalid token")
        info = _info(row)
        if info.revoked_at is not None:
            raise Unauthorized("token has been revoked")
        now = utcnow()
        if info.last_used_at is None or now - info.last_used_at > _LAST_USED_RESOLUTION:
            with self.engine.begin() as conn:
                conn.execute(tokens.update().where(tokens.c.id == info.id).values(last_used_at=now))
        return info
