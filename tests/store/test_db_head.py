"""The head revision read from the migration files (without Alembic) is Alembic's own."""

from modelyard.store.db import head_revision, head_revision_from_files


def test_the_declared_head_is_alembics_head():
    assert head_revision_from_files() == head_revision()


def test_files_that_are_not_one_chain_leave_the_answer_to_alembic(tmp_path, monkeypatch):
    from modelyard.store import db

    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n')
    (versions / "b.py").write_text('revision = "b"\ndown_revision = "a"\n')
    monkeypatch.setattr(db, "MIGRATIONS_DIR", tmp_path)
    assert head_revision_from_files() == "b"
    (versions / "c.py").write_text('revision = "c"\ndown_revision = "a"\n')  # two heads: Alembic decides
    assert head_revision_from_files() is None
    (versions / "d.py").write_text('revision = "d"\ndown_revision = ("b", "c")\n')  # a merge: one head again
    assert head_revision_from_files() == "d"
    (versions / "e.py").write_text("revision = compute()\n")
    assert head_revision_from_files() is None
