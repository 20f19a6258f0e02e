"""The worker as users run it: a real ``modelyard worker`` process running real job processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from modelyard.jobs.queue import JobQueue
from support import cli_env

pytestmark = pytest.mark.slow  # real worker and job processes, kill -9 and recovery


def start_worker(settings, *args):
    env = cli_env(settings.home, MODELYARD_STALE_AFTER_S=3, MODELYARD_JOB_KINDS=TEST_KINDS,
                  PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    if settings.db_url:
        env["MODELYARD_DB_URL"] = settings.db_url
    with open(settings.home / "worker-test.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "modelyard.cli.main", "worker", *args],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )


def worker_log(settings):
    return (settings.home / "worker-test.log").read_text()


TEST_KINDS = "test.slow-idempotent=kinds_for_tests:SLOW_IDEMPOTENT"


def wait_for(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_worker_runs_jobs_to_completion_with_results_and_logs(workspace):
    queue = JobQueue(workspace)
    workspace.blobs.put_bytes(b"one")
    workspace.blobs.put_bytes(b"two")
    ok = queue.submit("blob.verify", {})
    bad = queue.submit("system.sleep", {"seconds": 0.2, "fail": True})
    proc = start_worker(workspace.settings, "--until-idle")
    proc.wait(timeout=60)
    assert proc.returncode == 0, worker_log(workspace.settings)
    ok, bad = queue.get(ok.id), queue.get(bad.id)
    assert ok.status == "succeeded" and ok.result["ok"] == 2 and ok.result["healthy"]
    assert "verified 2 blob(s)" in ok.log_path.read_text()
    assert bad.status == "failed" and "failed on request" in bad.error
    assert "Traceback" in bad.log_path.read_text()


def test_worker_finds_tampered_blobs(sqlite_workspace):
    queue = JobQueue(sqlite_workspace)
    info = sqlite_workspace.blobs.put_bytes(b"precious")
    path = sqlite_workspace.blobs.path_for(info.digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"rotten")
    job = queue.submit("blob.verify", {})
    start_worker(sqlite_workspace.settings, "--until-idle").wait(timeout=60)
    result = queue.get(job.id).result
    assert result["corrupt"] == ["sha256:" + info.digest] and not result["healthy"]


def test_concurrency_limit(sqlite_workspace):
    queue = JobQueue(sqlite_workspace)
    ids = [queue.submit("system.sleep", {"seconds": 1.5}).id for _ in range(3)]
    proc = start_worker(sqlite_workspace.settings, "--concurrency", "2", "--until-idle")
    try:
        wait_for(lambda: sum(queue.get(i).status == "running" for i in ids) == 2)
        time.sleep(0.5)
        assert sum(queue.get(i).status == "running" for i in ids) == 2
        proc.wait(timeout=60)
    finally:
        stop(proc)
    assert [queue.get(i).status for i in ids] == ["succeeded"] * 3


def test_cancel_kills_the_whole_process_tree(sqlite_workspace):
    queue = JobQueue(sqlite_workspace)
    job = queue.submit("system.sleep", {"seconds": 120})
    proc = start_worker(sqlite_workspace.settings)
    try:
        running = wait_for(lambda: (j := queue.get(job.id)).pid and j)
        job_proc = psutil.Process(running.pid)
        queue.cancel(job.id)
        wait_for(lambda: queue.get(job.id).status == "cancelled")
        assert wait_for(lambda: not job_proc.is_running() or job_proc.status() == psutil.STATUS_ZOMBIE, 10)
        assert "cancelled on request" in running.log_path.read_text()
    finally:
        stop(proc)


@pytest.mark.parametrize("kind,expected", [("system.sleep", "failed"), ("test.slow-idempotent", "succeeded")])
def test_kill_9_of_the_worker_mid_job_then_restart(workspace, monkeypatch, kind, expected):
    """Nothing stays 'running' forever: a non-idempotent job is failed with a reason, an idempotent one re-runs."""
    monkeypatch.setenv("MODELYARD_JOB_KINDS", TEST_KINDS)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    queue = JobQueue(workspace)
    job = queue.submit(kind, {"seconds": 30} if expected == "failed" else {"seconds": 2.0})
    first = start_worker(workspace.settings)
    running = wait_for(lambda: (j := queue.get(job.id)).status == "running" and j.pid and j)
    child = psutil.Process(running.pid)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    # the job process dies with its worker (PDEATHSIG) or is killed by recovery
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 15)
    assert queue.get(job.id).status == "running", "the row still says running: only recovery can fix it"
    second = start_worker(workspace.settings, "--until-idle")
    try:
        second.wait(timeout=60)
    finally:
        stop(second)
    final = queue.get(job.id)
    assert final.status == expected, (final.status, final.error)
    log = final.log_path.read_text()
    if expected == "failed":
        assert "stopped while the job was running" in final.error and "kill -9" in final.error
        assert final.attempts == 1
    else:
        assert final.attempts == 2 and "re-queued" in log and final.result == {"slept": 2.0}


def test_stale_heartbeat_is_recovered_without_restart(sqlite_workspace):
    """A job claimed by a worker on another host that stopped heartbeating is failed by a live worker."""
    import sqlalchemy as sa

    from modelyard.store.schema import jobs

    queue = JobQueue(sqlite_workspace)
    job = queue.submit("system.sleep", {"seconds": 1})
    queue.claim("other-host:12345", 1)
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job.id).values(
            heartbeat_at=sa.func.datetime("now", "-1 hour")))
    proc = start_worker(sqlite_workspace.settings, "--until-idle")
    proc.wait(timeout=60)
    final = queue.get(job.id)
    assert final.status == "failed" and "other-host:12345" in final.error


def test_a_job_process_that_dies_is_failed_with_its_exit_code(sqlite_workspace):
    queue = JobQueue(sqlite_workspace)
    job = queue.submit("system.sleep", {"seconds": 60})
    proc = start_worker(sqlite_workspace.settings)
    try:
        running = wait_for(lambda: (j := queue.get(job.id)).pid and j)
        os.kill(running.pid, signal.SIGKILL)
        final = wait_for(lambda: (j := queue.get(job.id)).done and j)
    finally:
        stop(proc)
    assert final.status == "failed" and "exited with code -9" in final.error
    assert "exited with code -9" in final.log_path.read_text()


def test_stopping_the_worker_fails_its_running_job_with_the_reason(sqlite_workspace):
    queue = JobQueue(sqlite_workspace)
    job = queue.submit("system.sleep", {"seconds": 60})
    proc = start_worker(sqlite_workspace.settings)
    wait_for(lambda: queue.get(job.id).pid)
    stop(proc)
    assert proc.returncode == 0
    final = queue.get(job.id)
    assert final.status == "failed" and "shut down" in final.error


def test_a_cancel_accepted_before_the_worker_died_is_kept(sqlite_workspace, monkeypatch):
    """An idempotent job is re-queued after a crash, unless the user had already asked to cancel it."""
    monkeypatch.setenv("MODELYARD_JOB_KINDS", TEST_KINDS)
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    queue = JobQueue(sqlite_workspace)
    job = queue.submit("test.slow-idempotent", {"seconds": 60})
    first = start_worker(sqlite_workspace.settings)
    wait_for(lambda: queue.get(job.id).pid)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert queue.cancel(job.id).cancel_requested
    second = start_worker(sqlite_workspace.settings, "--until-idle")
    try:
        second.wait(timeout=60)
    finally:
        stop(second)
    final = queue.get(job.id)
    assert final.status == "cancelled" and final.attempts == 1
