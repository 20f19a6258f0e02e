"""The job process's bookkeeping, run in-process: how a failure is recorded."""

import sys
from pathlib import Path

from modelyard.jobs.queue import JobQueue
from modelyard.jobs.runner import run_job


def test_a_job_missing_an_optional_package_fails_naming_the_extra(sqlite_workspace, monkeypatch, capsys):
    monkeypatch.setenv("MODELYARD_JOB_KINDS", "test.needs-pandas=kinds_for_tests:NEEDS_PANDAS")
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setitem(sys.modules, "pandas", None)
    queue = JobQueue(sqlite_workspace)
    job = queue.submit("test.needs-pandas", {"seconds": 0})
    [claimed] = queue.claim("test-worker", 1)
    assert run_job(queue, claimed.id) == 1
    failed = queue.get(job.id)
    assert failed.status == "failed" and failed.error == "this needs pandas: pip install 'modelyard[ml]'"
    assert "failed: this needs pandas" in capsys.readouterr().out
