"""Talking to a Ray cluster through its dashboard (the Jobs API), shared by the job executor (``executor = "ray"``)
and the services supervisor (``placement: ray``): the client, the reachability check, and the environment that
reproduces a workspace's settings in a process Ray starts on another node.

Nothing here imports Ray at module level: ``ray`` is imported by the functions that need it (``[scale]`` extra).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import fields

from modelyard.core.errors import Unavailable
from modelyard.core.settings import Settings

# the standard variables boto3 (and other clients) read, passed on when this process has them
PASSED_THROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                  "AWS_ENDPOINT_URL", "MODELYARD_JOB_KINDS")
TERMINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": -15}


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``MODELYARD_*`` variables that reproduce ``settings`` in a process on another node."""
    defaults = Settings(home=settings.home)
    env = {}
    for item in fields(Settings):
        if item.name in ("home", "workers"):
            continue
        value = getattr(settings, item.name)
        if value is not None and value != getattr(defaults, item.name):
            env["MODELYARD_" + item.name.upper()] = str(value)
    env["MODELYARD_DB_URL"] = settings.database_url  # a SQLite default names this machine's file explicitly
    return env


def ray_job_env(settings: Settings) -> dict[str, str]:
    """``runtime_env["env_vars"]`` of a Ray Job that opens the workspace of ``settings``."""
    env = settings_env(settings)
    env.update({name: os.environ[name] for name in PASSED_THROUGH if os.environ.get(name)})
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONSAFEPATH"] = "1"
    return env


def state_on_servers(settings: Settings) -> bool:
    """True when every piece of the workspace's state is on a server (``db_url`` and ``blob_url``): a process on
    any node can then work in a scratch folder of its own instead of the workspace's home."""
    return bool(settings.db_url and settings.blob_url)


def scratch_key(settings: Settings) -> str:
    """A short name for the workspace on a node's scratch disk (two workspaces on one cluster never share)."""
    return hashlib.sha256(f"{settings.database_url}|{settings.blob_url}".encode()).hexdigest()[:12]


def status_name(status) -> str:
    return str(getattr(status, "value", status))


def connect(address: str | None):
    """A Jobs API client for the dashboard at ``address``; ``Unavailable`` with the reason when it cannot."""
    if not address:
        raise Unavailable("executor 'ray' needs ray_address (the Ray dashboard URL, e.g. http://127.0.0.1:8265)")
    from modelyard.core.extras import require

    require("ray")
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, HTTP errors: one line either way
        raise Unavailable(f"cannot reach the Ray dashboard at {address}: {str(exc).splitlines()[0]}") from exc


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """``Unavailable`` unless the dashboard at ``address`` answers (one HTTP call; no Ray import)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(address.rstrip("/") + "/api/version", timeout=timeout) as response:
            json.loads(response.read())
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unavailable(f"cannot reach the Ray dashboard at {address}: {reason}") from exc
