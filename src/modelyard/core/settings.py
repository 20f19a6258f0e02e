"""Workspace settings: explicit arguments > environment (``MODELYARD_*``) > ``<home>/config.toml`` > defaults.

Example ``config.toml``::

    db_url = "postgresql+psycopg://modelyard@localhost/modelyard"
    max_body_bytes = 104857600
    workers = 4
    # scale-out (docs/scale-out.md): jobs on a Ray cluster, blobs on S3-compatible object storage
    executor = "ray"
    ray_address = "http://ray-head:8265"
    blob_url = "s3://modelyard-blobs/prod"
    s3_endpoint_url = "http://seaweedfs:8333"
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from modelyard.core.errors import WorkspaceError

ENV_PREFIX = "MODELYARD_"
EXECUTORS = ("local", "ray")


def default_home() -> Path:
    return Path(os.environ.get("MODELYARD_HOME") or Path.home() / ".modelyard").expanduser()


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to open a workspace.

    Args:
        home: workspace folder (database, blobs, job logs). Default ``$MODELYARD_HOME`` or ``~/.modelyard``.
        db_url: SQLAlchemy URL; default SQLite at ``<home>/modelyard.db``. PostgreSQL:
            ``postgresql+psycopg://user:pw@host/db``.
        max_body_bytes: largest request body the REST API accepts (413 above it). Default 64 MiB.
        workers: jobs a worker runs at once. Default: the number of cores.
        heartbeat_s: how often a worker marks its running jobs alive.
        stale_after_s: a running job whose heartbeat is older than this is recovered by any worker.
        max_archive_bytes: most bytes a dataset archive may unpack to in total. Default 20 GiB.
        max_archive_member_bytes: most bytes one file in a dataset archive may unpack to. Default 1 GiB.
        max_archive_ratio: most unpacked bytes per compressed byte (per zip member and over the whole archive,
            judged past the first MiB). Default 100; images barely compress, a zip bomb compresses ~1000x.
        blob_gc_grace_s: ``blobs gc`` never deletes a blob written or re-uploaded less than this many seconds ago
            (an upload or import still running may not reference it yet). Default 86400 (a day). Chunked upload
            sessions untouched for longer are expired by ``blobs gc`` too.
        max_upload_bytes: most bytes one chunked upload session may hold in total (413 on the chunk that would pass
            it), so an open session cannot fill the disk. Default 64 GiB.
        executor: where job processes run: ``"local"`` (processes on the worker's machine, the default) or
            ``"ray"`` (each job submitted as a Ray Job to ``ray_address``).
        ray_address: the Ray head's dashboard URL for the Jobs API, e.g. ``http://127.0.0.1:8265``.
        blob_url: where blobs live: unset for ``<home>/blobs``, or ``s3://bucket/prefix`` for S3-compatible object
            storage (credentials from ``s3_access_key_id``/``s3_secret_access_key`` or the standard AWS variables
            and files).
        s3_endpoint_url: the S3 server for a non-AWS store (SeaweedFS, MinIO, Ceph), e.g. ``http://host:8333``;
            default ``$AWS_ENDPOINT_URL`` or AWS itself.
        s3_region: the bucket's region; default ``$AWS_DEFAULT_REGION`` or ``us-east-1``.
        s3_access_key_id, s3_secret_access_key: credentials; default the AWS variables/files boto3 reads.
    """

    home: Path = field(default_factory=default_home)
    db_url: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    heartbeat_s: float = 1.0
    stale_after_s: float = 15.0
    max_archive_bytes: int = 20 * 1024**3
    max_archive_member_bytes: int = 1024**3
    max_archive_ratio: float = 100.0
    blob_gc_grace_s: float = 86_400.0
    max_upload_bytes: int = 64 * 1024**3
    executor: str = "local"
    ray_address: str | None = None
    blob_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'modelyard.db'}"

    @property
    def blobs_dir(self) -> Path:
        return self.home / "blobs"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @classmethod
    def load(cls, home: str | Path | None = None, **overrides) -> Settings:
        """Resolve settings for ``home`` from its config file, the environment and ``overrides``."""
        home_path = Path(home).expanduser() if home else default_home()
        values: dict = {}
        config_file = home_path / "config.toml"
        if config_file.is_file():
            try:
                values.update(tomllib.loads(config_file.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise WorkspaceError(f"cannot read {config_file}: {exc}") from exc
        known = {f.name: f for f in fields(cls) if f.name != "home"}
        unknown = set(values) - set(known)
        if unknown:
            raise WorkspaceError(f"{config_file}: unknown setting(s) {', '.join(sorted(unknown))}")
        for name in known:
            env = os.environ.get(ENV_PREFIX + name.upper())
            if env not in (None, ""):
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(home=home_path.resolve())
        coerced = {}
        for name, value in values.items():
            kind = type(getattr(settings, name)) if getattr(settings, name) is not None else str
            try:
                coerced[name] = kind(value)
            except (TypeError, ValueError) as exc:
                raise WorkspaceError(f"setting {name}={value!r} is not a valid {kind.__name__}") from exc
        settings = replace(settings, **coerced)
        if settings.workers < 1:
            raise WorkspaceError(f"setting workers={settings.workers} must be at least 1")
        for name in ("max_archive_bytes", "max_archive_member_bytes", "max_archive_ratio", "max_upload_bytes"):
            if getattr(settings, name) <= 0:
                raise WorkspaceError(f"setting {name}={getattr(settings, name)} must be positive")
        if settings.blob_gc_grace_s < 0:
            raise WorkspaceError(f"setting blob_gc_grace_s={settings.blob_gc_grace_s} must not be negative")
        if settings.executor not in EXECUTORS:
            raise WorkspaceError(f"setting executor={settings.executor!r} must be one of {', '.join(EXECUTORS)}")
        if settings.executor == "ray" and not settings.ray_address:
            raise WorkspaceError("setting executor='ray' needs ray_address (the Ray dashboard URL, "
                                 "e.g. http://127.0.0.1:8265)")
        if settings.blob_url and not settings.blob_url.startswith("s3://"):
            raise WorkspaceError(f"setting blob_url={settings.blob_url!r} must be s3://bucket[/prefix] "
                                 "(leave it unset for <home>/blobs)")
        if settings.max_body_bytes < 1024:
            raise WorkspaceError(f"setting max_body_bytes={settings.max_body_bytes} must be at least 1024")
        return settings
