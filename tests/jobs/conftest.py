"""The scale-out workspace the costly Ray tests share: ONE home whose settings point at the session's Ray head and
S3 server (and, with CI's PostgreSQL, at one database of its own), created and migrated once per session instead
of once per test. Tests that share it only add (their own datasets, jobs and models, found by id or name)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class RayHome:
    home: Path
    blob_url: str
    dashboard: str


@pytest.fixture(scope="session")
def ray_s3_home(ray_head, s3_server, tmp_path_factory, request):
    """A home configured for ``executor = "ray"`` + S3 (+ PostgreSQL when ``MODELYARD_TEST_PG_URL`` is set),
    migrated once; its database is dropped at the end of the session."""
    from modelyard.core.settings import Settings
    from modelyard.store.workspace import Workspace

    home = tmp_path_factory.mktemp("ray-s3") / "home"
    home.mkdir()
    db_url = _session_pg_database(request) if os.environ.get("MODELYARD_TEST_PG_URL") else None
    blob_url = s3_server.new_url()
    values = {"executor": "ray", "ray_address": ray_head.dashboard, **s3_server.settings_values(blob_url),
              **({"db_url": db_url} if db_url else {})}
    (home / "config.toml").write_text("".join(f'{key} = "{value}"\n' for key, value in values.items()))
    Workspace.open(Settings.load(home)).close()  # migrated here, once
    return RayHome(home, blob_url, ray_head.dashboard)


def _session_pg_database(request) -> str:
    """A fresh PostgreSQL database for the session (``pg_database`` is one per test)."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(request.getfixturevalue("pg_server"))
    name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
    kwargs = dict(host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
                  dbname=admin.database or "postgres", autocommit=True)
    with psycopg.connect(**kwargs) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(**kwargs) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return admin.set(database=name).render_as_string(hide_password=False)
