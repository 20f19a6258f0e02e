import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from modelyard.core.errors import WorkspaceError
from modelyard.core.settings import Settings
from modelyard.store.db import full_metadata, head_revision, open_database
from modelyard.store.workspace import Workspace


def test_migrations_build_exactly_the_declared_schema(workspace):
    """The Alembic migrations and schema.py cannot drift apart."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with workspace.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head_revision()
        diff = compare_metadata(context, full_metadata())
    assert diff == []


def test_reopening_is_idempotent(settings):
    for _ in range(2):
        Workspace.open(settings).close()


def test_sqlite_connection_settings(sqlite_workspace):
    with sqlite_workspace.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_corrupt_database_is_one_clear_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "modelyard.db").write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(WorkspaceError, match="corrupt or not a SQLite database"):
        Workspace.open(Settings.load(home))


def test_truncated_sqlite_database_is_one_clear_error(tmp_path):
    home = tmp_path / "home"
    Workspace.open(Settings.load(home)).close()
    db = home / "modelyard.db"
    data = db.read_bytes()
    for suffix in ("-wal", "-shm"):
        (home / f"modelyard.db{suffix}").unlink(missing_ok=True)
    db.write_bytes(data[:100] + b"\xff" * (len(data) - 100))
    with pytest.raises(WorkspaceError, match="cannot open database"):
        Workspace.open(Settings.load(home))


def test_unwritable_database_is_one_clear_error(tmp_path):
    home = tmp_path / "home"
    Workspace.open(Settings.load(home)).close()
    db = home / "modelyard.db"
    if os.geteuid() == 0:  # root ignores permissions, not the immutable attribute
        if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a filesystem without chattr +i: cannot make the file unwritable")
        undo = ["chattr", "-i", str(db)]
    else:
        os.chmod(db, 0o444)
        undo = ["chmod", "644", str(db)]
    try:
        with pytest.raises(WorkspaceError, match="not writable"):
            Workspace.open(Settings.load(home))
    finally:
        subprocess.run(undo, check=True)


def test_database_path_that_cannot_be_opened_is_one_clear_error(tmp_path):
    home = tmp_path / "home"
    (home / "modelyard.db").mkdir(parents=True)
    with pytest.raises(WorkspaceError, match="cannot open database"):
        Workspace.open(Settings.load(home))


def test_unwritable_home_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WorkspaceError, match="cannot create workspace folder|not a folder"):
        Workspace.open(Settings.load(blocker / "home"))
    with pytest.raises(WorkspaceError, match="not a folder"):
        Workspace.open(Settings.load(blocker))


def test_bad_database_url():
    with pytest.raises(WorkspaceError, match="unsupported database|invalid database URL"):
        open_database("mysql://x@localhost/db")


@pytest.mark.postgres
def test_unreachable_postgres_is_one_clear_error(pg_server):
    with pytest.raises(WorkspaceError, match="cannot open database"):
        open_database("postgresql+psycopg://nobody:secret@127.0.0.1:1/none?connect_timeout=2")


@pytest.mark.slow
def test_processes_opening_a_new_workspace_together_all_succeed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import sys; from modelyard.core.settings import Settings; from modelyard.store.workspace import Workspace\n"
        "Workspace.open(Settings.load(sys.argv[1])).close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(home)], stderr=subprocess.PIPE) for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    engine = sa.create_engine(f"sqlite:///{home / 'modelyard.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
    engine.dispose()
