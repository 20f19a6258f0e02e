"""Move a workspace's metadata and blobs to another configuration (SQLite + local blobs -> PostgreSQL + S3).

Every row of every table is copied in dependency order into the target database (migrated to head first, and
refused unless it is empty), then every blob is copied and verified by its digest on the way (a corrupt source blob
stops the copy, naming it). Copying blobs again skips those the target holds, so an interrupted run can be resumed
with ``blobs_only``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from modelyard.core.errors import IntegrityError, InvalidInput
from modelyard.store.db import full_metadata

BATCH = 1000


def _copy_rows(source: sa.Engine, target: sa.Engine, log: Callable[[str], None]) -> dict[str, int]:
    metadata = full_metadata()
    counts = {}
    with target.connect() as conn:
        busy = [t.name for t in metadata.sorted_tables if conn.execute(sa.select(sa.func.count()).select_from(t))
                .scalar()]
    if busy:
        raise InvalidInput(f"the target database is not empty (rows in {', '.join(busy[:5])}); "
                           "copy into a fresh database, or pass blobs_only to copy the blobs alone")
    with source.connect() as src, target.begin() as dst:
        for table in metadata.sorted_tables:
            result = src.execute(sa.select(table))
            count = 0
            while rows := result.fetchmany(BATCH):
                dst.execute(table.insert(), [dict(row._mapping) for row in rows])
                count += len(rows)
            counts[table.name] = count
            if count:
                log(f"copied {count} row(s) of {table.name}")
        if dst.dialect.name == "postgresql":  # explicit ids do not advance the sequences behind them
            for table in metadata.sorted_tables:
                for column in table.primary_key.columns:
                    if column.autoincrement is True and isinstance(column.type, sa.Integer):
                        dst.execute(sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                            f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"))
    return counts


def _copy_blobs(source, target, log: Callable[[str], None]) -> tuple[int, int, int]:
    copied = skipped = size = 0
    staging = Path(source.root) / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    for digest in source.iter_digests():
        if target.exists(digest):
            skipped += 1
            continue
        with tempfile.TemporaryDirectory(dir=staging) as tmp:
            path = source.copy_to(digest, Path(tmp) / "blob")  # verified against its digest
            info = target.put_file(path)
        if info.digest != digest:
            raise IntegrityError(f"blob sha256:{digest} arrived as sha256:{info.digest}")
        copied += 1
        size += info.size
        if copied % 100 == 0:
            log(f"copied {copied} blob(s), {size} bytes")
    return copied, skipped, size


def transfer_workspace(source, target, blobs_only: bool = False,
                       log: Callable[[str], None] = lambda _: None) -> dict:
    """Copy the open workspace ``source`` into the open workspace ``target``; returns what was copied."""
    if source.settings.database_url == target.settings.database_url and not blobs_only:
        raise InvalidInput("source and target use the same database")
    rows = {} if blobs_only else _copy_rows(source.engine, target.engine, log)
    copied, skipped, size = _copy_blobs(source.blobs, target.blobs, log)
    log(f"copied {copied} blob(s) ({size} bytes), {skipped} already there")
    return {"schema": "modelyard.migrate-store/1", "rows": rows, "blobs_copied": copied, "blobs_skipped": skipped,
            "bytes": size, "target_blobs": target.blobs.describe()}
