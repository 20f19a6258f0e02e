"""Open the metadata database: SQLite by default (WAL, foreign keys, busy timeout), PostgreSQL by URL.

Alembic migrations run automatically on open, under a lock so two processes starting together do not race.
Every failure to open becomes one ``WorkspaceError`` line that says what is wrong with which file or URL.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from modelyard.core.errors import WorkspaceError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(url: str) -> Engine:
    """An engine for ``url`` with Modelyard's connection settings (no I/O until first use)."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise WorkspaceError(f"invalid database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            poolclass=sa.pool.NullPool if parsed.database in (None, "", ":memory:") else None,
            # the server's thread pool runs up to 40 requests at once; with the default 5 (+10 overflow) the busy
            # ones opened and closed a connection each time, paying connect + the pragmas below per request
            **({} if parsed.database in (None, "", ":memory:") else {"pool_size": 20, "max_overflow": 30}),
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no branch - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        try:
            return sa.create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
        except ModuleNotFoundError as exc:
            raise WorkspaceError(
                f"the PostgreSQL driver is not installed ({exc.name}); install modelyard[postgres]"
            ) from exc
    raise WorkspaceError(f"unsupported database {parsed.get_backend_name()!r}; use sqlite:// or postgresql+psycopg://")


def describe(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


@contextlib.contextmanager
def _migration_lock(engine: Engine, conn: sa.Connection):
    if engine.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7412300)"))
        yield
        return
    db_path = engine.url.database
    if not db_path or db_path == ":memory:":
        yield
        return
    lock_path = Path(db_path + ".migrate.lock")
    with os.fdopen(os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def full_metadata() -> sa.MetaData:
    """The metadata of every table: ``schema.py`` plus each ``schema_<area>.py`` module beside it (one per
    capability, so capabilities add tables without editing a shared file)."""
    import importlib
    import pkgutil

    from modelyard.store import schema

    package_dir = Path(__file__).parent
    for module in pkgutil.iter_modules([str(package_dir)]):
        if module.name.startswith("schema_"):
            importlib.import_module(f"modelyard.store.{module.name}")
    return schema.metadata


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def head_revision_from_files() -> str | None:
    """The head revision as the migration files declare it (their ``revision`` and ``down_revision``), read without
    importing Alembic; None when they do not read as one plain chain (then Alembic answers).

    Every CLI command run in-process opens the workspace: checking that it is current this way spares each of them
    the Alembic import (a tenth of a second of CPU), which only a migration needs.
    """
    import ast

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        declared = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                with contextlib.suppress(ValueError):
                    declared[node.targets[0].id] = ast.literal_eval(node.value)
        revision, down = declared.get("revision"), declared.get("down_revision", ())
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        parents.update([down] if isinstance(down, str) else down if isinstance(down, tuple) else ())
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _current_revision(engine: Engine) -> str | None:
    """The revision the database is at (Alembic's ``alembic_version`` table), or None (new, or not one head)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


def migrate(engine: Engine) -> str:
    """Bring the database to the newest schema; returns the revision. Cheap when already current."""
    declared_head = head_revision_from_files()
    if declared_head is not None and _current_revision(engine) == declared_head:
        return declared_head
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    head = head_revision()
    with engine.connect() as probe:
        if MigrationContext.configure(probe).get_current_revision() == head:
            return head
    with engine.begin() as conn, _migration_lock(engine, conn):
        if MigrationContext.configure(conn).get_current_revision() != head:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    return head


def open_database(url: str, run_migrations: bool = True) -> Engine:
    """Create the engine, check the database is usable and migrate it. Raises one-line ``WorkspaceError``s.

    Args:
        url: SQLAlchemy URL.
        run_migrations: bring the schema to head (default). Job processes pass False: their worker already did,
            and importing Alembic would double a job's start-up time.
    """
    engine = create_db_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        path = Path(engine.url.database)
        if path.exists() and not path.is_file():
            raise WorkspaceError(f"cannot open database {path}: it is not a regular file")
        if path.exists() and not os.access(path, os.W_OK):
            raise WorkspaceError(f"database {path} is not writable")
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as handle:
                if handle.read(16) != b"SQLite format 3\x00":
                    raise WorkspaceError(f"database {path} is corrupt or not a SQLite database")
        if not os.access(path.parent, os.W_OK):
            raise WorkspaceError(f"database folder {path.parent} is not writable")
        _make_private(path)
    try:
        if run_migrations:
            migrate(engine)
        else:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1 FROM jobs WHERE 1 = 0"))
    except sa.exc.DatabaseError as exc:
        engine.dispose()
        reason = str(exc.orig).splitlines()[0] if getattr(exc, "orig", None) else str(exc).splitlines()[0]
        raise WorkspaceError(f"cannot open database {describe(url)}: {reason}") from exc
    except sa.exc.OperationalError as exc:  # pragma: no cover - subclass of DatabaseError, kept for clarity
        engine.dispose()
        raise WorkspaceError(f"cannot open database {describe(url)}: {exc}") from exc
    return engine


PRIVATE_FILE = 0o600


def _make_private(path: Path) -> None:
    """Create the SQLite file owner-only before SQLite does (it would use the umask, usually 0644; its -wal and -shm
    files copy the database's mode), and tighten one this user owns that an older version left readable."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(OSError):
            info = candidate.stat()
            if info.st_uid == os.getuid() and info.st_mode & 0o077:
                os.chmod(candidate, PRIVATE_FILE)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything Modelyard stores is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
