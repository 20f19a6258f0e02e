"""The workspace is private to its owner: folders 0700, the database 0600, blobs 0400 (read-only, owner only)."""

import os
import stat

from modelyard.core.settings import Settings
from modelyard.store.workspace import Workspace


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_workspace_is_owner_only(tmp_path):
    old_umask = os.umask(0o022)  # the usual default, which would give 0755 folders and 0644 files
    try:
        workspace = Workspace.open(Settings.load(tmp_path / "home"))
        try:
            info = workspace.blobs.put_bytes(b"private")
            home = tmp_path / "home"
            assert _mode(home) == 0o700
            assert _mode(home / "blobs") == 0o700 and _mode(home / "jobs") == 0o700
            db_files = [p for p in home.iterdir() if p.name.startswith("modelyard.db")]
            assert db_files and all(_mode(p) & 0o077 == 0 for p in db_files), {p.name: oct(_mode(p)) for p in
                                                                                 db_files}
            assert _mode(home / "modelyard.db") == 0o600
            assert _mode(workspace.blobs.path_for(info.digest)) == 0o400
            assert _mode(workspace.blobs.path_for(info.digest).parent) == 0o700
        finally:
            workspace.close()
    finally:
        os.umask(old_umask)


def test_an_existing_world_readable_database_is_tightened(tmp_path):
    Workspace.open(Settings.load(tmp_path / "home")).close()
    db = tmp_path / "home" / "modelyard.db"
    os.chmod(db, 0o644)
    Workspace.open(Settings.load(tmp_path / "home")).close()
    assert _mode(db) == 0o600
