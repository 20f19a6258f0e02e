"""Console sessions: a token pasted once becomes a signed, expiring, ``HttpOnly``, ``SameSite=Strict`` cookie.

The cookie names the token by id, never by secret, and is signed (HMAC-SHA256) with a per-workspace key in
``<home>/console-secret`` (mode 0600, created on first use). Every request re-reads the token row, so revoking a
token ends its console sessions at once. Every state-changing form carries a CSRF token bound to the session
(an HMAC of the session's nonce): a forged cross-site form cannot know it, and SameSite=Strict keeps the cookie
off cross-site requests in the first place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from modelyard.core.errors import NotFound
from modelyard.store.tokens import TokenStore

COOKIE = "myd_session"
LOGIN_COOKIE = "myd_login_csrf"
SESSION_S = 12 * 3600
SECRET_FILE = "console-secret"


class SignInRequired(Exception):
    """No valid session: the console answers with its sign-in page (never a traceback)."""

    def __init__(self, reason: str = ""):
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token."""


def signing_key(home: Path) -> bytes:
    """The workspace's console key; created atomically with mode 0600 the first time it is needed."""
    path = Path(home) / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    try:
        # link, not rename: when two processes race, the first key wins and both read it back
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, message: str) -> str:
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


@dataclass(frozen=True)
class Session:
    token_id: str
    name: str
    role: str
    nonce: str
    expires: int

    def csrf(self, key: bytes) -> str:
        return _mac(key, "csrf:" + self.nonce)


def issue(key: bytes, token_id: str, lifetime_s: int = SESSION_S) -> str:
    """A cookie value for a session of ``token_id`` that ends after ``lifetime_s``."""
    payload = _b64(json.dumps({"t": token_id, "n": secrets.token_urlsafe(16),
                               "e": int(time.time()) + lifetime_s}).encode())
    return payload + "." + _mac(key, payload)


def read(key: bytes, value: str | None, tokens: TokenStore) -> Session:
    """The session a cookie names; ``SignInRequired`` for a missing, forged, expired or revoked one."""
    if not value:
        raise SignInRequired("")
    payload, _, mac = value.partition(".")
    if not mac or not hmac.compare_digest(mac, _mac(key, payload)):
        raise SignInRequired("your session is not valid here; sign in again")
    try:
        data = json.loads(_unb64(payload))
        token_id, nonce, expires = str(data["t"]), str(data["n"]), int(data["e"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SignInRequired("your session is not valid here; sign in again") from exc
    if expires < time.time():
        raise SignInRequired("your session has expired; sign in again")
    try:
        info = tokens.get(token_id)
    except NotFound as exc:
        raise SignInRequired("the token of this session no longer exists; sign in again") from exc
    if not info.active:
        raise SignInRequired("the token of this session has been revoked; sign in with another")
    return Session(info.id, info.name, info.role, nonce, expires)


def login_csrf(key: bytes, nonce: str) -> str:
    """The sign-in form's CSRF value (double submit: the pre-session cookie holds ``nonce``)."""
    return _mac(key, "login:" + nonce)


def check_csrf(expected: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(expected, given):
        raise CsrfRefused()
