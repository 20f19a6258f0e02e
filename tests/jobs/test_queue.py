import subprocess
import sys
from datetime import timedelta

import pytest

from modelyard.core.errors import Conflict, InvalidInput, NotFound
from modelyard.jobs.queue import JobQueue


@pytest.fixture
def queue(workspace):
    return JobQueue(workspace)


def test_submit_validates_kind_and_spec(queue):
    with pytest.raises(InvalidInput, match="known kinds: .*blob.verify") as err:
        queue.submit("no.such.kind")
    assert err.value.code == "unknown_job_kind"
    with pytest.raises(InvalidInput, match=r"spec\.seconds"):
        queue.submit("system.sleep", {"seconds": "soon"})
    with pytest.raises(InvalidInput, match=r"spec\.bogus"):
        queue.submit("system.sleep", {"bogus": 1})
    job = queue.submit("system.sleep", {"seconds": 0.5}, owner="alice")
    assert (job.status, job.owner, job.spec["seconds"], job.attempts) == ("queued", "alice", 0.5, 0)
    assert job.log_path.exists()


def test_state_machine(queue):
    job = queue.submit("system.sleep", {})
    [claimed] = queue.claim("w1", 5)
    assert claimed.id == job.id and claimed.status == "running" and claimed.attempts == 1
    assert queue.claim("w2", 5) == []
    queue.report_progress(job.id, 0.4, "going")
    assert queue.get(job.id).progress == pytest.approx(0.4)
    assert queue.finish(job.id, "succeeded", result={"x": 1})
    assert not queue.finish(job.id, "failed", error="late"), "a finished job cannot be finished again"
    done = queue.get(job.id)
    assert (done.status, done.result, done.progress, done.error) == ("succeeded", {"x": 1}, 1.0, None)
    with pytest.raises(Conflict):
        queue.cancel(job.id)
    with pytest.raises(NotFound):
        queue.get("job_missing")


def test_cancel_queued_and_running(queue):
    queued = queue.submit("system.sleep", {})
    assert queue.cancel(queued.id).status == "cancelled"
    running = queue.submit("system.sleep", {})
    queue.claim("w1", 1)
    job = queue.cancel(running.id)
    assert job.status == "running" and job.cancel_requested
    assert queue.heartbeat([running.id], "w1") == [running.id]


def test_list_filters_and_pages(queue):
    ids = [queue.submit("system.sleep", {}, owner="a" if i % 2 else "b").id for i in range(7)]
    queue.submit("blob.verify", {})
    page, cursor = queue.list(kind="system.sleep", limit=3)
    assert [j.id for j in page] == ids[::-1][:3]
    seen = [j.id for j in page]
    while cursor:
        page, cursor = queue.list(kind="system.sleep", limit=3, before=cursor)
        seen += [j.id for j in page]
    assert seen == ids[::-1]
    assert {j.owner for j in queue.list(owner="a")[0]} == {"a"}
    assert len(queue.list(status="queued")[0]) == 8
    with pytest.raises(InvalidInput):
        queue.list(status="bogus")
    with pytest.raises(InvalidInput):
        queue.list(limit=0)


def test_stale_running_jobs(queue):
    job = queue.submit("system.sleep", {})
    queue.claim("w1", 1)
    assert queue.stale_running(timedelta(seconds=60)) == []
    assert [j.id for j in queue.stale_running(timedelta(seconds=-1))] == [job.id]
    assert queue.requeue(job.id, "again", worker="w1")
    assert queue.get(job.id).status == "queued"


@pytest.mark.slow
def test_concurrent_writers_lose_nothing_and_never_double_claim(settings, queue):
    """Two processes submit and claim at once: every job exists once and is claimed by exactly one of them."""
    script = (
        "import sys, json\n"
        "from modelyard.core.settings import Settings\n"
        "from modelyard.store.workspace import Workspace\n"
        "from modelyard.jobs.queue import JobQueue\n"
        "q = JobQueue(Workspace.open(Settings.load(sys.argv[1], db_url=sys.argv[2] or None)))\n"
        "claimed = []\n"
        "for i in range(40):\n"
        "    q.submit('system.sleep', {'seconds': 0}, owner=sys.argv[3])\n"
        "    claimed += [j.id for j in q.claim(sys.argv[3], 1)]\n"
        "print(json.dumps(claimed))\n"
    )
    import json

    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(settings.home), settings.db_url or "", name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("p1", "p2")
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(json.loads(out))
    claimed = outs[0] + outs[1]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    jobs, _ = queue.list(limit=500)
    assert len(jobs) == 80
    assert sum(j.status == "running" for j in jobs) == len(claimed)
