"""The worker loop: claims queued jobs, runs at most N at once through an executor, keeps them alive with
heartbeats, kills cancelled ones, and recovers jobs whose worker died (crash, ``kill -9``, power loss).

Recovery rule: a ``running`` job belongs to a dead worker when that worker's process is gone from this host, or
when its heartbeat is older than ``stale_after_s`` (any host). Its orphaned process, if still alive here, is
killed; then the job is re-queued when its kind is idempotent (up to ``max_attempts``), failed otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import timedelta

import psutil
from sqlalchemy.exc import SQLAlchemyError

from modelyard.core import plugins
from modelyard.core.errors import ModelyardError
from modelyard.core.settings import Settings
from modelyard.jobs.executor import Executor, LocalExecutor, kill_tree
from modelyard.jobs.queue import Job, JobQueue
from modelyard.store.workspace import Workspace

log = logging.getLogger("modelyard.worker")
RECOVER_INTERVAL_S = 5.0


def make_executor(settings: Settings) -> Executor:
    """The executor ``settings.executor`` names: local processes, or Ray Jobs on ``settings.ray_address``."""
    if settings.executor == "ray":
        from modelyard.jobs.ray_executor import RayExecutor

        return RayExecutor(settings)
    return LocalExecutor(settings)


def _host() -> str:
    return socket.gethostname()


class Worker:
    """Args:
        workspace: the opened workspace.
        executor: where job processes run; default the one ``settings.executor`` names (``LocalExecutor``, or
            ``RayExecutor`` for ``executor = "ray"``).
        concurrency: jobs at once; default ``settings.workers`` (the number of cores).
        poll_interval: seconds between loop turns.
    """

    def __init__(
        self,
        workspace: Workspace,
        executor: Executor | None = None,
        concurrency: int | None = None,
        poll_interval: float = 0.2,
    ):
        self.workspace = workspace
        self.queue = JobQueue(workspace)
        self.executor = executor or make_executor(workspace.settings)
        self.concurrency = concurrency or workspace.settings.workers
        self.poll_interval = poll_interval
        self.id = f"{_host()}:{os.getpid()}"
        self.stop_event = threading.Event()
        self._last_heartbeat = 0.0
        self._last_recover = 0.0

    # -- recovery -----------------------------------------------------------------------------------------------
    def _worker_is_dead(self, job: Job) -> bool:
        if job.worker == self.id:
            # a restarted container can reuse host name and pid: then "our" job is one we never started
            return job.id not in self.executor.active()
        host, _, pid_text = (job.worker or "").rpartition(":")
        if host == _host() and pid_text.isdigit() and not psutil.pid_exists(int(pid_text)):
            return True
        stale = timedelta(seconds=self.workspace.settings.stale_after_s)
        return job.heartbeat_at is None or (job.heartbeat_at < _now() - stale)

    def recover(self) -> list[str]:
        """Re-queue or fail every running job whose worker is dead. Returns the ids it handled."""
        handled = []
        for job in self.queue.running():
            if not self._worker_is_dead(job):
                continue
            host = (job.worker or "").rpartition(":")[0]
            if job.pid and host == _host():
                kill_tree(job.pid, job.pid_started)
            self.executor.stop_orphan(job.id)
            reason = (
                f"worker {job.worker} stopped while the job was running (crash, kill -9 or power loss); "
                f"attempt {job.attempts}"
            )
            retry = self._retries(job)
            if job.cancel_requested:
                if self.queue.finish(job.id, "cancelled", message="cancelled", worker=job.worker):
                    self._note(job.id, f"cancelled on request (its worker {job.worker} had stopped)")
                    handled.append(job.id)
                continue
            if retry:
                done = self.queue.requeue(job.id, f"re-queued: {reason}", worker=job.worker)
            else:
                done = self.queue.finish(job.id, "failed", error=reason, message="failed: worker died",
                                         worker=job.worker)
            if done:
                log.warning("recovered job %s: %s", job.id, "re-queued" if retry else "failed")
                self._note(job.id, f"{'re-queued' if retry else 'failed'}: {reason}")
                handled.append(job.id)
        return handled

    def _note(self, job_id: str, message: str) -> None:
        """Append the worker's own line to a job's log (what happened to the job from outside its process)."""
        path = self.queue.log_path(job_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{_now().strftime('%Y-%m-%dT%H:%M:%S.%f')[:-4]}Z [worker {self.id}] {message}\n")

    # -- the loop -----------------------------------------------------------------------------------------------
    def _reap(self) -> None:
        for job_id, code in self.executor.poll().items():
            job = self.queue.get(job_id)
            if job.status == "running":
                if job.cancel_requested:
                    self.queue.finish(job_id, "cancelled", message="cancelled", worker=self.id)
                    self._note(job_id, "cancelled on request")
                elif self.executor.requeues_lost_jobs and self._retries(job):
                    reason = (f"re-queued: the job process exited with code {code} without reporting a result "
                              f"(its node or worker was lost); attempt {job.attempts}")
                    if self.queue.requeue(job_id, reason, worker=self.id):
                        self._note(job_id, reason)
                else:
                    error = f"job process exited with code {code} without reporting a result (see the job log)"
                    self.queue.finish(job_id, "failed", worker=self.id, message="failed", error=error)
                    self._note(job_id, error)

    @staticmethod
    def _retries(job: Job) -> bool:
        """Whether an interrupted attempt of ``job`` goes back to the queue: an idempotent kind with attempts left."""
        try:
            kind = plugins.load_job_kind(job.kind)
        except ModelyardError:
            return False
        return kind.idempotent and job.attempts < kind.max_attempts

    def _heartbeat(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.workspace.settings.heartbeat_s:
            return
        self._last_heartbeat = now
        for job_id in self.queue.heartbeat(sorted(self.executor.active()), self.id):
            self.executor.kill(job_id)
            if self.queue.finish(job_id, "cancelled", message="cancelled", worker=self.id):
                self._note(job_id, "cancelled on request: process tree killed")

    def _start_new(self, max_jobs: int | None, started: int) -> int:
        free = self.concurrency - len(self.executor.active())
        if max_jobs is not None:
            free = min(free, max_jobs - started)
        count = 0
        for job in self.queue.claim(self.id, free):
            try:
                proc = self.executor.start(job.id, self.queue.log_path(job.id))
            except (OSError, ModelyardError) as exc:
                self.queue.finish(job.id, "failed", error=f"cannot start job process: {exc}", worker=self.id)
                continue
            self.queue.set_process(job.id, proc.pid, proc.pid_started)
            count += 1
        return count

    def turn(self, max_jobs: int | None = None, started: int = 0) -> int:
        """One pass of the loop; returns how many jobs it started."""
        now = time.monotonic()
        if now - self._last_recover >= RECOVER_INTERVAL_S:
            self._last_recover = now
            self.recover()
        self._reap()
        self._heartbeat()
        return self._start_new(max_jobs, started)

    def run(self, until_idle: bool = False, max_jobs: int | None = None, handle_signals: bool = True) -> int:
        """Loop until stopped (SIGTERM/SIGINT), or until no job is queued or running with ``until_idle``.

        Returns the number of jobs started.
        """
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        started = 0
        backoff = self.poll_interval
        try:
            while not self.stop_event.is_set():
                try:
                    started += self.turn(max_jobs, started)
                    backoff = self.poll_interval
                except SQLAlchemyError as exc:  # a locked SQLite or a dropped PostgreSQL connection: wait, retry
                    backoff = min(backoff * 2, 10.0)
                    log.warning("database error in the worker loop (retrying in %.1fs): %s", backoff,
                                str(exc).splitlines()[0])
                    self.stop_event.wait(backoff)
                    continue
                if not self.executor.active():
                    if max_jobs is not None and started >= max_jobs:
                        break
                    if until_idle and self.queue.count_by_status()["queued"] == 0:
                        break
                self.stop_event.wait(self.poll_interval)
        finally:
            self.shutdown()
        return started

    def shutdown(self) -> None:
        """Stop every job this worker still runs: idempotent kinds go back to the queue, others fail."""
        for job_id in sorted(self.executor.active()):
            self.executor.kill(job_id)
            job = self.queue.get(job_id)
            if job.done:  # it had recorded its result and was only exiting (a Ray driver disconnecting)
                continue
            try:
                idempotent = plugins.load_job_kind(job.kind).idempotent
            except ModelyardError:
                idempotent = False
            reason = f"worker {self.id} shut down while the job was running"
            if job.cancel_requested:
                self.queue.finish(job_id, "cancelled", message="cancelled", worker=self.id)
                self._note(job_id, "cancelled on request")
                continue
            if idempotent:
                self.queue.requeue(job_id, f"re-queued: {reason}", worker=self.id)
            else:
                self.queue.finish(job_id, "failed", error=reason, message="failed: worker stopped", worker=self.id)
            self._note(job_id, ("re-queued: " if idempotent else "failed: ") + reason)


def _now():
    from modelyard.core.ids import utcnow

    return utcnow()
