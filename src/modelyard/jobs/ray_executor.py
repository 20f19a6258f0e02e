"""Jobs as Ray Jobs: ``executor = "ray"`` with ``ray_address`` (the head's dashboard URL).

The worker loop is unchanged: it claims a job from the queue and hands it to this executor, which submits the same
``python -m modelyard.jobs.runner --job ID`` as the local executor, but as a Ray Job through the Jobs API
(``JobSubmissionClient``; Ray Client is no longer maintained). The job process, wherever Ray places it, opens the
same database and blob store, reports its own progress and result into the job row, exactly as locally, so run ids,
lineage and results do not depend on the executor. This executor copies the Ray job's log into the job's log file
and maps cancel to ``stop_job``.

``runtime_env`` carries ``env_vars`` only (no ``pip``/``conda``: clusters are often offline; Modelyard must be
installed on the nodes). The settings travel as ``MODELYARD_*`` variables. When the workspace keeps its metadata in a
server database (``db_url``) and its blobs in S3 (``blob_url``), the job's home is a scratch folder on the node;
otherwise the job uses the worker's home, which then has to be on a shared file system (or the same machine).
"""

from __future__ import annotations

import contextlib
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.errors import Unavailable
from modelyard.core.ray_cluster import (  # noqa: F401 - settings_env and connect: this module's API since Ray jobs
    TERMINAL,
    connect,
    ray_job_env,
    settings_env,
    state_on_servers,
)
from modelyard.core.settings import Settings
from modelyard.jobs.executor import Executor, Started

LOG_INTERVAL_S = 1.0


def job_home(settings: Settings, job_id: str) -> str:
    """Where the job process keeps its scratch: the worker's home unless every piece of state is on a server."""
    if state_on_servers(settings):
        return f"${{TMPDIR:-/tmp}}/modelyard-ray-jobs/{job_id}"
    return str(settings.home)


@dataclass
class _RayRun:
    submission_id: str
    log_path: Path
    log_offset: int = 0
    last_log: float = field(default=0.0)


class RayExecutor(Executor):
    """Args:
        settings: the workspace's settings (``ray_address`` required).
        num_cpus: CPUs Ray reserves for each job's entry point. Default 1.
    """

    requeues_lost_jobs = True  # a Ray job that ends without a result lost its node or driver

    def __init__(self, settings: Settings, num_cpus: float = 1.0):
        self.settings = settings
        self.num_cpus = num_cpus
        self._client = None
        self._runs: dict[str, _RayRun] = {}

    @property
    def client(self):
        if self._client is None:
            self._client = connect(self.settings.ray_address)
        return self._client

    def start(self, job_id: str, log_path: Path) -> Started:
        home = job_home(self.settings, job_id)
        if home == str(self.settings.home):
            entrypoint = f"python -m modelyard.jobs.runner --home {shlex.quote(home)} --job {shlex.quote(job_id)}"
        else:  # a scratch folder on the node ($TMPDIR expanded there, so no quoting of the variable)
            entrypoint = (f"mkdir -p -m 700 \"{home}\" && "
                          f"python -m modelyard.jobs.runner --home \"{home}\" --job {shlex.quote(job_id)}")
        submission_id = f"modelyard-{job_id}-{uuid.uuid4().hex[:8]}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.submit_job(
                entrypoint=entrypoint, submission_id=submission_id, entrypoint_num_cpus=self.num_cpus,
                runtime_env={"env_vars": ray_job_env(self.settings)}, metadata={"modelyard_job": job_id})
        except Unavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - the Jobs API raises RuntimeError/ConnectionError/HTTP errors
            raise OSError(f"Ray at {self.settings.ray_address} refused the job: {str(exc).splitlines()[0]}") from exc
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"submitted as Ray job {submission_id} to {self.settings.ray_address}\n")
        self._runs[job_id] = _RayRun(submission_id, log_path)
        return Started(0, 0.0)  # no local process: recovery must not kill a local pid

    def _copy_logs(self, run: _RayRun, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - run.last_log < LOG_INTERVAL_S:
            return
        run.last_log = now
        with contextlib.suppress(Exception):  # a log copy that fails is retried on the next turn
            text = self.client.get_job_logs(run.submission_id)
            if len(text) > run.log_offset:
                with open(run.log_path, "a", encoding="utf-8") as log:
                    log.write(text[run.log_offset:])
                run.log_offset = len(text)

    def poll(self) -> dict[str, int]:
        ended = {}
        for job_id, run in list(self._runs.items()):
            try:
                info = self.client.get_job_info(run.submission_id)
            except Exception:  # noqa: BLE001 - the head is briefly unreachable: ask again next turn
                continue
            status = str(getattr(info.status, "value", info.status))
            if status in TERMINAL:
                self._copy_logs(run, force=True)
                if status != "SUCCEEDED" and info.message:
                    with open(run.log_path, "a", encoding="utf-8") as log:
                        log.write(f"Ray job {run.submission_id} {status.lower()}: {info.message}\n")
                ended[job_id] = TERMINAL[status]
                del self._runs[job_id]
            else:
                self._copy_logs(run)
        return ended

    def kill(self, job_id: str) -> None:
        run = self._runs.pop(job_id, None)
        if run is None:
            return
        self._stop(run.submission_id)
        self._copy_logs(run, force=True)

    def _stop(self, submission_id: str, timeout: float = 30.0) -> None:
        with contextlib.suppress(Exception):
            self.client.stop_job(submission_id)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                status = str(getattr(self.client.get_job_status(submission_id), "value", ""))
                if status in TERMINAL:
                    return
                time.sleep(0.2)

    def stop_orphan(self, job_id: str) -> None:
        """Stop the Ray jobs of a job whose worker died (another worker recovers it)."""
        with contextlib.suppress(Exception):
            for details in self.client.list_jobs():
                if (details.metadata or {}).get("modelyard_job") == job_id and \
                        str(getattr(details.status, "value", details.status)) not in TERMINAL:
                    self._stop(details.submission_id)

    def active(self) -> set[str]:
        return set(self._runs)


def cluster_resources(address: str | None) -> dict:
    """The cluster's total resources (CPU, GPU, memory...) as the dashboard reports them."""
    import json
    import urllib.request

    connect(address)
    try:
        with urllib.request.urlopen(address.rstrip("/") + "/api/cluster_status", timeout=10) as response:
            data = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise Unavailable(f"cannot read the Ray cluster's resources at {address}: {exc}") from exc
    usage = (data.get("data") or {}).get("clusterStatus", {}).get("loadMetricsReport", {}).get("usage", {})
    return {name: float(pair[1]) for name, pair in usage.items() if isinstance(pair, list) and len(pair) == 2}
