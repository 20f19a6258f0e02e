"""A workspace: the home folder, its metadata database and its blob store, opened together.

Everything is private to the user who runs Modelyard: the folders it creates are 0700, the SQLite database 0600
(tightened on every open, also for a workspace made before this rule) and blobs 0400. Tokens are stored as hashes,
but datasets, models and job logs are the users' data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from modelyard.core.errors import WorkspaceError
from modelyard.core.settings import Settings
from modelyard.store.blob_stores import open_blob_store
from modelyard.store.blobs import BlobStore
from modelyard.store.db import open_database

PRIVATE_DIR = 0o700


@dataclass
class Workspace:
    settings: Settings
    engine: Engine
    blobs: BlobStore

    @classmethod
    def open(cls, settings: Settings, create: bool = True, migrate: bool = True) -> Workspace:
        """Open (and with ``create``, make) the workspace at ``settings.home``; migrate its database unless
        ``migrate`` is False (job processes, whose worker already migrated)."""
        home = settings.home
        if not home.exists():
            if not create:
                raise WorkspaceError(f"no workspace at {home}; run 'modelyard init --home {home}'")
            try:
                home.mkdir(parents=True, mode=PRIVATE_DIR)
                os.chmod(home, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
            except OSError as exc:
                raise WorkspaceError(f"cannot create workspace folder {home}: {exc.strerror}") from exc
        if not home.is_dir():
            raise WorkspaceError(f"workspace path {home} is not a folder")
        if not os.access(home, os.W_OK | os.X_OK):
            raise WorkspaceError(f"workspace folder {home} is not writable")
        for sub in (settings.blobs_dir, settings.jobs_dir):
            if not sub.exists():
                sub.mkdir(mode=PRIVATE_DIR)
                os.chmod(sub, PRIVATE_DIR)
        engine = open_database(settings.database_url, run_migrations=migrate)
        return cls(settings=settings, engine=engine, blobs=open_blob_store(settings))

    @property
    def home(self) -> Path:
        return self.settings.home

    def close(self) -> None:
        self.engine.dispose()
