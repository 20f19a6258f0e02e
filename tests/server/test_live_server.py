"""A real ``modelyard server`` process on 127.0.0.1, driven over HTTP by httpx, the SDK and the CLI."""

import json
import time

import httpx
import pytest

from modelyard.client import Client
from support import run_cli

pytestmark = pytest.mark.slow  # a real server process (with its worker) per test


def test_health_auth_and_a_job_end_to_end_over_http(live_server):
    url, token = live_server.url, live_server.token
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/api/v1/jobs").status_code == 401
    assert httpx.get(f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    with Client(url=url, token=token) as client:
        job = client.jobs.submit("system.sleep", {"seconds": 1.0, "step": 0.2})
        streamed = b""
        with httpx.stream("GET", f"{url}/api/v1/jobs/{job['id']}/logs", params={"follow": True},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60) as response:
            for chunk in response.iter_bytes():
                streamed += chunk
        assert b"slept 1.0s" in streamed and b"succeeded" in streamed
        assert client.jobs.get(job["id"])["status"] == "succeeded"
        followed = "".join(client.jobs.follow_logs(job["id"]))
        assert "slept 1.0s" in followed


def test_cli_against_the_server(live_server):
    common = ("--url", live_server.url, "--token", live_server.token)
    submitted = run_cli(*common, "jobs", "submit", "blob.verify", "--wait", "--json", check=True)
    job = json.loads(submitted.stdout)
    assert job["status"] == "succeeded" and job["result"]["healthy"] is True
    listed = json.loads(run_cli(*common, "jobs", "list", "--json", check=True).stdout)
    assert listed["schema"] == "modelyard.job-list/1" and listed["items"][0]["id"] == job["id"]
    viewer = json.loads(run_cli(*common, "tokens", "create", "--role", "viewer", "--json", check=True).stdout)
    denied = run_cli("--url", live_server.url, "--token", viewer["token"], "jobs", "submit", "system.sleep")
    assert denied.returncode == 1 and denied.stderr.count("\n") == 1 and "editor role" in denied.stderr
    run_cli(*common, "tokens", "revoke", viewer["id"], check=True)
    revoked = run_cli("--url", live_server.url, "--token", viewer["token"], "jobs", "list")
    assert revoked.returncode == 1 and "revoked" in revoked.stderr


def test_server_stops_cleanly_and_takes_its_worker_along(live_server):
    import psutil

    info = json.loads((live_server.home / "server.json").read_text())
    worker = psutil.Process(info["worker_pid"])
    assert live_server.stop() == 0
    assert not (live_server.home / "server.json").exists()
    worker.wait(timeout=10)
    assert not worker.is_running()


def test_unreachable_server_is_one_line():
    proc = run_cli("--url", "http://127.0.0.1:9", "--token", "x", "jobs", "list")
    assert proc.returncode == 1 and "cannot reach the Modelyard server" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_server_restarts_a_worker_that_died(live_server):
    import os
    import signal
    import time

    info_path = live_server.home / "server.json"
    first = json.loads(info_path.read_text())["worker_pid"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        second = json.loads(info_path.read_text())["worker_pid"]
        if second != first:
            break
        time.sleep(0.2)
    assert second != first, "the worker was not restarted"
    with Client(url=live_server.url, token=live_server.token) as client:
        job = client.jobs.submit("system.sleep", {"seconds": 0})
        assert client.jobs.wait(job["id"], timeout=60)["status"] == "succeeded"


@pytest.mark.slow
def test_follow_streams_neither_hang_the_api_nor_exceed_the_per_token_cap(live_server):
    """45 ``follow=true`` streams used to hold 45 of the thread pool's 40 threads for up to 6 h: the API hung
    (issue 21 item 8b)."""
    import contextlib

    from modelyard.server.routes_jobs import FOLLOW_STREAMS_PER_TOKEN

    url, admin = live_server.url, {"Authorization": f"Bearer {live_server.token}"}
    with Client(url=url, token=live_server.token) as client:
        job = client.jobs.submit("system.sleep", {"seconds": 600, "step": 60})
        viewers = [client.tokens.create(f"follower-{i}", "viewer")["token"] for i in range(6)]
        logs = f"{url}/api/v1/jobs/{job['id']}/logs"
        http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=None))
        with http, contextlib.ExitStack() as streams:
            opened = []
            for index in range(45):
                token = viewers[index // FOLLOW_STREAMS_PER_TOKEN]
                response = streams.enter_context(http.stream("GET", logs, params={"follow": True},
                                                             headers={"Authorization": f"Bearer {token}"}))
                assert response.status_code == 200
                opened.append(response)
            listed = httpx.get(f"{url}/api/v1/jobs", headers=admin, timeout=10)
            assert listed.status_code == 200
            over = httpx.get(logs, params={"follow": True}, headers={"Authorization": f"Bearer {viewers[0]}"},
                             timeout=10)
            assert over.status_code == 429 and "already follows" in over.json()["error"]["message"]
            opened[0].close()  # the server notices at its next poll and frees the slot
            for _ in range(100):
                with http.stream("GET", logs, params={"follow": True},
                                 headers={"Authorization": f"Bearer {viewers[0]}"}) as again:
                    if again.status_code == 200:
                        break
                time.sleep(0.1)
            assert again.status_code == 200
        client.jobs.cancel(job["id"])
