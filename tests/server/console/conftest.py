"""Console fixtures: the API app on a fresh SQLite workspace, and browsers (TestClients) signed in by role."""

from __future__ import annotations

import pytest
from console_support import sign_in


@pytest.fixture
def console_app(sqlite_workspace):
    from modelyard.server.app import create_app

    return create_app(sqlite_workspace)


@pytest.fixture
def as_role(console_app, sqlite_workspace):
    """``as_role("editor")`` -> a TestClient signed in with a new token of that role (``.secret``, ``.token_id``)."""
    from fastapi.testclient import TestClient

    from modelyard.store.tokens import TokenStore

    clients = []

    def make(role: str):
        info, secret = TokenStore(sqlite_workspace.engine).create(f"{role}-user", role)
        client = TestClient(console_app)
        client.secret, client.token_id = secret, info.id
        clients.append(client)
        return sign_in(client, secret)

    yield make
    for client in clients:
        client.close()
