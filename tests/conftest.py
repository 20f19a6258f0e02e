"""Shared fixtures: throw-away workspaces on SQLite and (when reachable) PostgreSQL, the in-process SDK client,
and a real server process on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from support import start_server

REPO = Path(__file__).resolve().parents[1]
# tiny models (MLP, CNN, ResNet, BERT) exported once per session, for every test folder; how the suite runs on
# several processes (make test) and what it kills at the end
pytest_plugins = ["tiny_models", "scale_servers", "llm_models", "parallel"]
PG_ENV = "MODELYARD_TEST_PG_URL"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    """No test reads the developer's ~/.modelyard or a stray MODELYARD_* variable."""
    for name in list(os.environ):
        if name.startswith("MODELYARD_") and name != PG_ENV:
            monkeypatch.delenv(name)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path_factory.mktemp("default-home")))


def _pg_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def _pg_reachable(url: str) -> str | None:
    """None when a server answers at ``url``, else the reason it doesn't."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install modelyard[postgres])"
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        with psycopg.connect(
            host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password,
            dbname=parsed.database or "postgres", connect_timeout=3,
        ):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {parsed.render_as_string(hide_password=True)} unreachable: {str(exc).strip()[:120]}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    url = _pg_admin_url()
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)")
    reason = _pg_reachable(url)
    if reason:
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_database(pg_server):
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(pg_server)
    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    kwargs = dict(host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
                  dbname=admin.database or "postgres", autocommit=True)
    with psycopg.connect(**kwargs) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(**kwargs) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str | None:
    """Each store test runs on both backends: None means the SQLite default under the workspace home."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_database")


@pytest.fixture
def settings(tmp_path, db_url):
    from modelyard.core.settings import Settings

    return Settings.load(tmp_path / "home", db_url=db_url)


@pytest.fixture
def workspace(settings):
    from modelyard.store.workspace import Workspace

    ws = Workspace.open(settings)
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path):
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    ws = Workspace.open(Settings.load(tmp_path / "home"))
    yield ws
    ws.close()


@pytest.fixture
def client(tmp_path):
    """The in-process SDK on a fresh SQLite workspace (acting as the workspace owner)."""
    from modelyard.client import Client

    with Client(home=tmp_path / "home") as c:
        yield c


@pytest.fixture
def live_server(tmp_path):
    """A real ``modelyard server`` (with its worker) on a free 127.0.0.1 port."""
    server = start_server(tmp_path / "home")
    yield server
    server.stop()
