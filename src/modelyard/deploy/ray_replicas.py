"""Service replicas placed by Ray (``modelyard deploy ... --on ray``, spec field ``placement: ray``).

Each replica is one Ray Job submitted through the Jobs API at ``ray_address`` (the same dashboard URL the job
executor uses), its entry point the same replica server as locally (``python -m modelyard.deploy.replica --ray``),
reserving ``REPLICA_CPUS`` so Ray places it on a node with a free CPU. The replica opens the workspace from the
settings it gets as ``MODELYARD_*`` variables, so it fetches the model from the blob store (S3 on a cluster), loads
and warms it up, then listens on a free port of its node and prints ``modelyard-replica-listening HOST:PORT pid N``.
The supervisor reads that line from the job's log, health-checks the replica there, and forwards the service port
to the ready ones (:mod:`modelyard.deploy.router`). A replica that cannot load prints
``modelyard-replica-error <why>`` and exits 3; a crashed one is restarted by the supervisor with backoff, as a
local one; stopping is ``stop_job`` (SIGTERM: in-flight requests finish; Ray kills it after a grace).

Every replica job carries the metadata ``modelyard_service`` / ``modelyard_services_home``, so a supervisor that
starts after another one died stops the replicas it left behind.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import time
import uuid
from dataclasses import dataclass

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.core.ray_cluster import TERMINAL, connect, ray_job_env, scratch_key, state_on_servers, status_name

PLACEMENTS = ("local", "ray")
REPLICA_CPUS = 1.0
CONFIG_ENV = "MODELYARD_REPLICA_CONFIG"
LISTENING = "modelyard-replica-listening"
LOAD_ERROR = "modelyard-replica-error"
_LISTENING_LINE = re.compile(rf"^{LISTENING} (\S+):(\d+) pid (\d+)$", re.MULTILINE)
_ERROR_LINE = re.compile(rf"^{LOAD_ERROR} (.*)$", re.MULTILINE)


def check_placement(settings, placement: str) -> None:
    """Raise the one-line reason why services cannot be placed on ``placement`` with these settings."""
    if placement not in PLACEMENTS:
        raise InvalidInput(f"placement {placement!r} must be one of {', '.join(PLACEMENTS)}")
    if placement == "local":
        return
    if not settings.ray_address:
        raise InvalidInput("placement 'ray' needs the setting ray_address (the Ray dashboard URL, e.g. "
                           "http://127.0.0.1:8265; see docs/scale-out.md)")
    from modelyard.core.extras import require
    from modelyard.core.ray_cluster import check_reachable

    require("ray")
    check_reachable(settings.ray_address)


def replica_home(settings) -> str:
    """The replica's home on its node: a scratch folder per workspace when the database and the blobs are on
    servers (every replica of the workspace on that node shares its blob cache), else the workspace's home, which
    then has to be on a shared file system or the same machine (as for jobs on Ray)."""
    if state_on_servers(settings):
        return f"${{TMPDIR:-/tmp}}/modelyard-ray-services/{scratch_key(settings)}"
    return str(settings.home)


@dataclass(frozen=True)
class Progress:
    """What the supervisor learns about a replica's Ray job: its status, and from its log where it listens, or
    why it could not load."""

    status: str
    address: tuple[str, int] | None = None
    pid: int | None = None
    error: str | None = None
    message: str = ""

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


class RayReplicas:
    """The supervisor's side of Ray placement. Constructing it does no I/O; the first call connects.

    Args:
        settings: the workspace's settings (``ray_address`` names the cluster).
    """

    def __init__(self, settings):
        self.settings = settings
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.settings.ray_address)
            self.stop_leftovers()
        return self._client

    def _metadata(self, service: str) -> dict[str, str]:
        return {"modelyard_service": service, "modelyard_services_home": str(self.settings.home)}

    def start(self, service: str, revision: int, index: int, config: dict) -> str:
        """Submit one replica; returns its Ray submission id. Raises Unavailable when Ray refuses it."""
        home = replica_home(self.settings)
        command = f"python -m modelyard.deploy.replica --ray --index {index} --config-env {CONFIG_ENV} --home"
        if home == str(self.settings.home):
            entry = f"{command} {shlex.quote(home)}"
        else:  # a scratch folder on the node ($TMPDIR expanded there, so no quoting of the variable)
            entry = f'mkdir -p -m 700 "{home}" && {command} "{home}"'
        submission_id = f"modelyard-svc-{service}-r{revision}-{index}-{uuid.uuid4().hex[:8]}"
        env = {**ray_job_env(self.settings), CONFIG_ENV: json.dumps(config)}
        try:
            self.client.submit_job(entrypoint=entry, submission_id=submission_id,
                                   entrypoint_num_cpus=REPLICA_CPUS, runtime_env={"env_vars": env},
                                   metadata=self._metadata(service))
        except Unavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the Jobs API raises RuntimeError/ConnectionError/HTTP errors
            raise Unavailable(f"Ray at {self.settings.ray_address} refused the replica: "
                              f"{str(exc).splitlines()[0]}") from exc
        return submission_id

    def progress(self, submission_id: str, with_log: bool = True) -> Progress:
        """The job's status and, from its log, its address or its load error (``status`` ``UNKNOWN`` while the
        dashboard does not answer)."""
        try:
            info = self.client.get_job_info(submission_id)
            status = status_name(info.status)
            logs = self.client.get_job_logs(submission_id) if with_log or status in TERMINAL else ""
        except Exception:  # noqa: BLE001 - the dashboard is briefly unreachable: ask again next turn
            return Progress("UNKNOWN")
        listening = _LISTENING_LINE.search(logs)
        error = _ERROR_LINE.search(logs)
        message = info.message or ""
        if status in TERMINAL and error is None:
            tail = " | ".join(line for line in logs.strip().splitlines()[-3:] if line.strip())
            message = f"Ray job {submission_id} {status.lower()}: {message}" + (f": {tail}" if tail else "")
        return Progress(status, (listening.group(1), int(listening.group(2))) if listening else None,
                        int(listening.group(3)) if listening else None,
                        error.group(1).strip() if error else None, message)

    def stop(self, submission_id: str) -> None:
        """Ask Ray to stop the replica (SIGTERM, then SIGKILL after Ray's grace); returns at once."""
        with contextlib.suppress(Exception):
            self.client.stop_job(submission_id)

    def ended(self, submission_id: str) -> bool:
        try:
            return status_name(self.client.get_job_status(submission_id)) in TERMINAL
        except Exception:  # noqa: BLE001 - unknown counts as still running: asked again
            return False

    def wait_ended(self, submission_ids: list[str], timeout: float) -> list[str]:
        """Wait until every job ended; returns those still running at the deadline."""
        deadline = time.monotonic() + timeout
        left = list(submission_ids)
        while left and time.monotonic() < deadline:
            left = [s for s in left if not self.ended(s)]
            if left:
                time.sleep(0.2)
        return left

    def stop_leftovers(self) -> None:
        """Stop the replica jobs a previous supervisor of this workspace left running (it was killed)."""
        home = str(self.settings.home)
        with contextlib.suppress(Exception):
            for details in self._client.list_jobs():
                if ((details.metadata or {}).get("modelyard_services_home") == home
                        and status_name(details.status) not in TERMINAL):
                    self._client.stop_job(details.submission_id)
