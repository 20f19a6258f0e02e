"""``modelyard doctor``: check a configuration end to end, one line per problem.

Database reachable and migrated to head; blob store writable and read back (verified); executor reachable, with its
resources. Checks are collected first, the verdict is the report's ``bool``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

from modelyard.core.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]

    def __bool__(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def problems(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_dict(self) -> dict:
        return {"schema": "modelyard.doctor/1", "ok": bool(self), "checks": [c.to_dict() for c in self.checks]}

    def __str__(self) -> str:
        return "\n".join(f"{'ok ' if c.ok else 'ERR'} {c.name}: {c.detail}" for c in self.checks)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_database(settings: Settings) -> Check:
    import sqlalchemy as sa
    from alembic.runtime.migration import MigrationContext

    from modelyard.store.db import create_db_engine, describe, head_revision

    where = describe(settings.database_url)
    try:
        engine = create_db_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                current = MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any driver error is the answer
        return Check("database", False, f"{where} unreachable: {_one_line(exc)}")
    head = head_revision()
    if current != head:
        state = "not initialised" if current is None else f"at revision {current}"
        return Check("database", False, f"{where} is {state}, the code needs {head}: run 'modelyard init'")
    return Check("database", True, f"{where} reachable, schema at {head}")


def check_blobs(settings: Settings) -> Check:
    from modelyard.store.blob_stores import open_blob_store

    try:
        store = open_blob_store(settings)
        probe = f"modelyard doctor probe {uuid.uuid4().hex} {os.getpid()}".encode()
        info = store.put_bytes(probe)
        if store.read_bytes(info.digest) != probe:
            return Check("blobs", False, f"{store.describe()}: read back different bytes")
        store.delete(info.digest)
    except Exception as exc:  # noqa: BLE001
        return Check("blobs", False, _one_line(exc))
    return Check("blobs", True, f"{store.describe()} writable, read back and verified")


def check_executor(settings: Settings) -> Check:
    if settings.executor == "local":
        return Check("executor", True, f"local processes, {settings.workers} at once")
    from modelyard.jobs.ray_executor import cluster_resources, connect

    try:
        client = connect(settings.ray_address)
        client.list_jobs()
        resources = cluster_resources(settings.ray_address)
    except Exception as exc:  # noqa: BLE001
        return Check("executor", False, f"Ray at {settings.ray_address}: {_one_line(exc)}")
    cpus = resources.get("CPU", 0.0)
    if cpus < 1:
        return Check("executor", False, f"Ray at {settings.ray_address} has no CPUs for jobs")
    shown = ", ".join(f"{name} {value / 1024**3:.1f} GiB" if "memory" in name else f"{name} {value:g}"
                      for name, value in sorted(resources.items())
                      if name in ("CPU", "GPU", "memory", "object_store_memory"))
    return Check("executor", True, f"Ray at {settings.ray_address} reachable: {shown}")


def run_doctor(settings: Settings) -> DoctorReport:
    """Every check, in order; none stops the others."""
    return DoctorReport((check_database(settings), check_blobs(settings), check_executor(settings)))
