"""Migration 0006_dataset_kinds: a workspace made before object-detection existed keeps its datasets and versions
and accepts the new kind (SQLite copies the table, which its versions refer to)."""

import pytest
import sqlalchemy as sa

from modelyard.store.db import MIGRATIONS_DIR, create_db_engine, migrate


def test_an_old_workspace_keeps_its_versions_and_accepts_object_detection(tmp_path):
    from alembic import command
    from alembic.config import Config

    engine = create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO datasets (id, name, kind, created_at) VALUES ('d1', 'old', 'tabular', "
                             "'2026-01-01')")
        conn.exec_driver_sql("INSERT INTO dataset_versions (id, dataset_id, version, manifest_digest, schema, split, "
                             "stats, lineage, source, items, size, created_at) VALUES ('v1', 'd1', 1, 'sha256:x', "
                             "'{}', '{}', '{}', '{}', '{}', 3, 10, '2026-01-01')")
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO datasets (id, name, kind, created_at) VALUES ('d2', 'boxes', "
                             "'object-detection', '2026-01-01')")
        assert conn.exec_driver_sql("SELECT dataset_id FROM dataset_versions").scalars().all() == ["d1"]
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO datasets (id, name, kind, created_at) VALUES ('d3', 'x', 'audio', "
                             "'2026-01-01')")
    engine.dispose()
