"""Executors start job processes and report when they end. The worker loop owns the queue; an executor only
owns processes, so a Ray executor can replace ``LocalExecutor`` without touching the worker or any caller.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import psutil

from modelyard.core.lifetime import die_with_parent
from modelyard.core.settings import Settings


@dataclass(frozen=True)
class Started:
    pid: int
    pid_started: float


class Executor(ABC):
    """Runs jobs somewhere. All methods are called from the worker loop's thread."""

    # a job whose process ended without recording a result: True re-queues an idempotent kind (up to its
    # max_attempts) instead of failing it. Locally that process is the job's own and its crash is the job's; on a
    # cluster it is usually a lost node or worker, which the job did not cause -- as a dead worker locally.
    requeues_lost_jobs = False

    @abstractmethod
    def start(self, job_id: str, log_path: Path) -> Started:
        """Start the job's process; it records its own result in the queue."""

    @abstractmethod
    def poll(self) -> dict[str, int]:
        """Jobs whose process has ended since the last poll, with exit codes."""

    @abstractmethod
    def kill(self, job_id: str) -> None:
        """Stop the job's whole process tree now."""

    @abstractmethod
    def active(self) -> set[str]:
        """Jobs whose processes are still running."""

    def stop_orphan(self, job_id: str) -> None:  # noqa: B027 - optional hook, local orphans are killed by pid
        """Stop what still runs of a job whose worker died (before another worker recovers it)."""


def kill_tree(pid: int, pid_started: float | None = None, timeout: float = 3.0) -> bool:
    """SIGTERM then SIGKILL a process and all its descendants. ``pid_started`` guards against pid reuse.

    Returns True when something was killed.
    """
    try:
        root = psutil.Process(pid)
        if pid_started is not None and abs(root.create_time() - pid_started) > 0.01:
            return False
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout)
    return True


class LocalExecutor(Executor):
    """One OS process per job (``python -m modelyard.jobs.runner``), in its own session, killed with its parent."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._procs: dict[str, subprocess.Popen] = {}

    def start(self, job_id: str, log_path: Path) -> Started:
        env = dict(os.environ)
        env["MODELYARD_HOME"] = str(self.settings.home)
        if self.settings.db_url:
            env["MODELYARD_DB_URL"] = self.settings.db_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["PYTHONSAFEPATH"] = "1"  # `python -m` would put the cwd first on sys.path: never import from there
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "modelyard.jobs.runner", "--home", str(self.settings.home), "--job", job_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.settings.home,
                preexec_fn=die_with_parent(signal.SIGKILL, new_session=True),  # noqa: PLW1509 - see core/lifetime.py
                close_fds=True,
            )
        self._procs[job_id] = proc
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            created = 0.0
        return Started(proc.pid, created)

    def poll(self) -> dict[str, int]:
        ended = {}
        for job_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is not None:
                ended[job_id] = code
                del self._procs[job_id]
        return ended

    def kill(self, job_id: str) -> None:
        proc = self._procs.pop(job_id, None)
        if proc is None:
            return
        kill_tree(proc.pid)
        # grandchildren that were re-parented away from the tree are still in the job's session
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def active(self) -> set[str]:
        return set(self._procs)
