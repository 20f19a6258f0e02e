"""Jobs as Ray Jobs on a real local Ray head, with the blobs on a real S3 server (SeaweedFS) and, when CI's
PostgreSQL is there, the metadata in PostgreSQL: the same job rows, results and logs as the local executor."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from modelyard.core.settings import Settings
from modelyard.jobs.executor import Executor, LocalExecutor, Started
from modelyard.jobs.queue import JobQueue
from modelyard.jobs.ray_executor import RayExecutor, settings_env
from modelyard.jobs.worker import Worker, make_executor
from modelyard.store.workspace import Workspace


def test_settings_pick_the_executor(tmp_path):
    assert isinstance(make_executor(Settings.load(tmp_path)), LocalExecutor)
    ray = Settings.load(tmp_path, executor="ray", ray_address="http://127.0.0.1:8265")
    assert isinstance(make_executor(ray), RayExecutor)
    with pytest.raises(Exception, match="needs ray_address"):
        Settings.load(tmp_path, executor="ray")
    with pytest.raises(Exception, match="must be one of local, ray"):
        Settings.load(tmp_path, executor="kubernetes")


def test_settings_travel_as_environment(tmp_path):
    settings = Settings.load(tmp_path, blob_url="s3://b/p", s3_endpoint_url="http://127.0.0.1:1", max_body_bytes=2048)
    env = settings_env(settings)
    assert env["MODELYARD_BLOB_URL"] == "s3://b/p" and env["MODELYARD_MAX_BODY_BYTES"] == "2048"
    assert env["MODELYARD_DB_URL"] == settings.database_url
    assert "MODELYARD_HEARTBEAT_S" not in env  # defaults stay defaults


class _NodeLost(Executor):
    """An executor whose every job process ends at once without a result, as when a Ray node dies."""

    requeues_lost_jobs = True

    def __init__(self):
        self.started: list[str] = []
        self._running: set[str] = set()

    def start(self, job_id, log_path) -> Started:
        self.started.append(job_id)
        self._running.add(job_id)
        return Started(0, 0.0)

    def poll(self) -> dict[str, int]:
        ended, self._running = dict.fromkeys(self._running, 137), set()
        return ended

    def kill(self, job_id) -> None:
        self._running.discard(job_id)

    def active(self) -> set[str]:
        return set(self._running)


def test_a_lost_job_is_requeued_while_its_kind_allows_then_failed(sqlite_workspace):
    queue = JobQueue(sqlite_workspace)
    idempotent = queue.submit("blob.verify", {})  # max_attempts 3
    once = queue.submit("system.sleep", {"seconds": 1})  # not idempotent: lost once is failed
    executor = _NodeLost()
    Worker(sqlite_workspace, executor=executor, concurrency=2).run(until_idle=True, handle_signals=False)
    assert executor.started.count(idempotent.id) == 3 and executor.started.count(once.id) == 1
    lost, failed = queue.get(idempotent.id), queue.get(once.id)
    assert lost.status == "failed" and lost.attempts == 3 and "exited with code 137" in lost.error
    log = lost.log_path.read_text()
    assert log.count("re-queued: the job process exited with code 137 without reporting a result") == 2
    assert failed.status == "failed" and failed.attempts == 1


@pytest.fixture
def ray_workspace(ray_head, s3_server, tmp_path, request):
    db_url = request.getfixturevalue("pg_database") if os.environ.get("MODELYARD_TEST_PG_URL") else None
    settings = Settings.load(tmp_path / "home", executor="ray", ray_address=ray_head.dashboard, db_url=db_url,
                             **s3_server.settings_values())
    workspace = Workspace.open(settings)
    yield workspace
    workspace.close()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_jobs_run_as_ray_jobs_with_results_logs_and_cancel(ray_workspace):
    from ray.job_submission import JobSubmissionClient

    queue = JobQueue(ray_workspace)
    ray_workspace.blobs.put_bytes(b"one")
    ray_workspace.blobs.put_bytes(b"two")
    ok = queue.submit("blob.verify", {})
    bad = queue.submit("system.sleep", {"seconds": 0.1, "fail": True})
    worker = Worker(ray_workspace, concurrency=2)
    assert isinstance(worker.executor, RayExecutor)
    worker.run(until_idle=True, handle_signals=False)
    ok, bad = queue.get(ok.id), queue.get(bad.id)
    assert ok.status == "succeeded", ok.log_path.read_text()
    assert ok.result["ok"] == 2 and ok.result["healthy"] and ok.progress == 1.0
    log = ok.log_path.read_text()
    assert "submitted as Ray job modelyard-" in log and "verified 2 blob(s)" in log
    assert bad.status == "failed" and "failed on request" in bad.error
    # the Ray job carries the Modelyard job id, for operators looking at the Ray dashboard
    client = JobSubmissionClient(ray_workspace.settings.ray_address)
    assert {ok.id, bad.id} <= {(j.metadata or {}).get("modelyard_job") for j in client.list_jobs()}

    # cancel maps to stop_job: the Ray job ends STOPPED and the job row cancelled
    slow = queue.submit("system.sleep", {"seconds": 120, "step": 0.1})
    worker = Worker(ray_workspace, concurrency=1)
    while queue.get(slow.id).progress <= 0:  # running on Ray and reporting progress
        worker.turn()
        worker.stop_event.wait(0.2)
    queue.cancel(slow.id)
    while queue.get(slow.id).status == "running":
        worker.turn()
        worker.stop_event.wait(0.2)
    assert queue.get(slow.id).status == "cancelled"
    stopped = [j for j in client.list_jobs() if (j.metadata or {}).get("modelyard_job") == slow.id]
    assert [str(j.status.value) for j in stopped] == ["STOPPED"]


def _kill_the_job_driver_at(workspace, job_id: str, step: int, done: threading.Event) -> None:
    """SIGKILL the job's own process on its Ray node (``python -m modelyard.jobs.runner --job ID``: what a lost
    node or driver looks like to the worker) once its run has logged ``step``."""
    import psutil

    from modelyard.train.tracking import RunStore

    runs = RunStore(workspace)
    while not done.is_set():
        tracked = runs.of_job(job_id)
        history = runs.metric_history(tracked[0].id, "loss").get("loss", []) if tracked else []
        if any(point["step"] >= step for point in history):
            break
        done.wait(0.2)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "modelyard.jobs.runner" in cmdline and job_id in cmdline:
            proc.kill()
            done.set()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_a_train_job_under_ray_train_is_requeued_after_its_driver_dies_and_resumes_from_the_checkpoint(
        ray_s3_home, tmp_path, request):
    """A ``train`` job with 2 Ray Train workers whose own process is SIGKILLed after the first checkpoint (a lost
    node): the worker re-queues the job and the second attempt continues the same run from that checkpoint, fetched
    from the blob store. (A dead *rank* is Ray Train's own group restart, ``FailureConfig``; the launcher's restart
    of a dead rank is tested locally in ``tests/train/test_user_jobs.py``: each Ray Train group start costs tens of
    seconds here.)"""
    import numpy as np
    import pandas as pd

    from modelyard.data.datasets import DatasetStore
    from modelyard.train.tracking import RunStore

    ray_workspace = Workspace.open(Settings.load(ray_s3_home.home), create=False)  # the session's, migrated once
    request.addfinalizer(ray_workspace.close)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2))
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "y": 3 * x[:, 0] - 2 * x[:, 1] + 0.5}).to_csv(tmp_path / "l.csv",
                                                                                          index=False)
    DatasetStore(ray_workspace).import_path(tmp_path / "l.csv", "lin", label="y", task="regression")
    script = Path(__file__).parents[1] / "train" / "ddp_script.py"
    digest = "sha256:" + ray_workspace.blobs.put_file(script).digest
    queue = JobQueue(ray_workspace)
    job = queue.submit("train", {"script": digest, "script_name": "ddp_script.py", "data": "lin@1", "workers": 2,
                                 "cpus_per_worker": 0.5, "params": {"steps": "20", "step_s": "0.25"}})
    killed = threading.Event()
    killer = threading.Thread(target=_kill_the_job_driver_at, args=(ray_workspace, job.id, 5, killed))
    killer.start()
    try:
        Worker(ray_workspace, concurrency=1).run(until_idle=True, handle_signals=False)
    finally:
        killed.set()
        killer.join()
    job = queue.get(job.id)
    log = job.log_path.read_text()
    assert job.status == "succeeded", log[-3000:]
    assert job.attempts == 2 and "re-queued: the job process exited with code" in log, log[-4000:]
    # the second attempt continues the run from its last checkpoint (step 4, or 9 if the kill came late)
    assert "continuing run" in log and re.search(r"rank 0: resumed at step (5|10)\n", log), log[-3000:]
    assert job.result["workers"] == 2 and job.result["steps"] == 19
    runs = RunStore(ray_workspace)
    assert [r.id for r in runs.of_job(job.id)] == [job.result["run_id"]]  # one run across both attempts
    run = runs.get(job.result["run_id"])
    assert run.status == "finished" and run.metrics["loss"] < 0.5 and ray_workspace.blobs.exists(
        job.result["checkpoint"])


def _quadratic(params: dict) -> float:
    if params["x"] > 0.95:
        raise ValueError("a trial's own failure")
    return (params["x"] - 0.3) ** 2


@pytest.mark.slow
@pytest.mark.xdist_group("ray")  # one Ray head per session: Ray tests share a worker
def test_trials_spread_over_the_cluster_with_ask_and_tell(ray_head):
    import ray

    from modelyard.train.ray_trials import run_trials_on_ray

    seen = []
    try:
        result = run_trials_on_ray(_quadratic, lambda trial: {"x": trial.suggest_float("x", -1, 1)}, n_trials=12,
                                   address=ray_head.address, on_trial=lambda n, p, v: seen.append((n, v)))
    finally:
        ray.shutdown()
    assert result.concurrency == 2  # the head's CPUs
    assert result.trials == 12 and len(seen) == 12
    assert result.failed == sum(v is None for _, v in seen) and result.failed < 12, result.first_error
    if result.failed:
        assert "a trial's own failure" in result.first_error
    assert result.best_value == min(v for _, v in seen if v is not None)
    assert abs(result.best_params["x"] - 0.3) < 0.5
