"""Moving a workspace (metadata and blobs) to another configuration: SQLite + local -> another database + S3."""

from __future__ import annotations

import os

import pytest

from modelyard.cli.main import main
from modelyard.core.errors import InvalidInput
from modelyard.core.settings import Settings
from modelyard.data.datasets import DatasetStore
from modelyard.store.transfer import transfer_workspace
from modelyard.store.workspace import Workspace


def _source(tmp_path) -> Workspace:
    workspace = Workspace.open(Settings.load(tmp_path / "old"))
    (tmp_path / "t.csv").write_text("a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(30)))
    DatasetStore(workspace).import_path(tmp_path / "t.csv", "tbl", label="y")
    return workspace


def _check_target(target: Workspace, source: Workspace) -> None:
    version = DatasetStore(target).get("tbl@1")
    frame, _ = DatasetStore(target).load_table(version)  # rows and blobs both arrived, verified on read
    assert len(frame) == 30
    assert sorted(target.blobs.iter_digests()) == sorted(source.blobs.iter_digests())


def test_move_to_a_fresh_database_and_refuse_a_used_one(tmp_path, capsys):
    source = _source(tmp_path)
    source.close()
    assert main(["system", "migrate-store", "--home", str(tmp_path / "old"), "--target-home", str(tmp_path / "new"),
                 "--json"]) == 0
    source, target = Workspace.open(Settings.load(tmp_path / "old")), Workspace.open(Settings.load(tmp_path / "new"))
    try:
        _check_target(target, source)
        with pytest.raises(InvalidInput, match="target database is not empty"):
            transfer_workspace(source, target)
        assert transfer_workspace(source, target, blobs_only=True)["blobs_skipped"] > 0
    finally:
        source.close()
        target.close()


@pytest.mark.slow
def test_move_to_postgres_and_s3(tmp_path, s3_server, request):
    if not os.environ.get("MODELYARD_TEST_PG_URL"):
        pytest.skip("needs MODELYARD_TEST_PG_URL")
    db_url = request.getfixturevalue("pg_database")
    source = _source(tmp_path)
    target = Workspace.open(Settings.load(tmp_path / "new", db_url=db_url, **s3_server.settings_values()))
    try:
        result = transfer_workspace(source, target)
        assert result["rows"]["dataset_versions"] == 1 and result["blobs_copied"] >= 2
        _check_target(target, source)
        (tmp_path / "t2.csv").write_text("a,b,y\n1,2,0\n2,3,1\n3,4,0\n4,5,1\n5,6,0\n6,7,1\n")
        DatasetStore(target).import_path(tmp_path / "t2.csv", "tbl2", label="y")  # ids continue after the copy
    finally:
        source.close()
        target.close()
