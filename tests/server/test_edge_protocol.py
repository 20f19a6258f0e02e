"""The device protocol's fast path (server/edge_protocol.py): it answers well-formed polls and reports itself, hands
everything else to the app with the body intact, keeps the app's errors and the credential's scope, and a report
that changes nothing takes no write transaction (its last seen is batched)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from starlette.testclient import TestClient

from modelyard.core.settings import Settings
from modelyard.edge.devices import Devices, LastSeen
from modelyard.server.app import close_app, create_app
from modelyard.server.edge_protocol import DeviceProtocol
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace

LIMIT = 4096


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One workspace and app for the module (each test registers its own devices)."""
    workspace = Workspace.open(Settings.load(tmp_path_factory.mktemp("protocol") / "home", max_body_bytes=LIMIT))
    app = create_app(workspace)
    try:
        with TestClient(app, raise_server_exceptions=False) as http:
            yield workspace, app, http
    finally:
        close_app(app)
        workspace.close()


@pytest.fixture
def platform(served, request):
    """(workspace, app, http, devices): ``devices`` maps cam-a and cam-b, two devices of this test, to (id,
    credential)."""
    workspace, app, http = served
    fleet = Devices(workspace.engine)
    devices = {}
    for name in ("cam-a", "cam-b"):
        _, code = fleet.register(f"{request.node.name[5:40]}-{name}")
        device, credential = fleet.activate(code)
        devices[name] = (device["id"], credential)
    return workspace, app, http, devices


def _auth(credential: str) -> dict:
    return {"Authorization": f"Bearer {credential}"}


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]["message"]


def test_well_formed_requests_are_answered_by_the_fast_path_and_the_rest_reach_the_app_intact(platform):
    workspace, app, _, devices = platform
    device_id, credential = devices["cam-a"]
    reached = []

    async def recorder(scope, receive, send):
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        reached.append((scope["method"], scope["query_string"].decode(), body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    fast = DeviceProtocol(recorder, api=app, max_body_bytes=LIMIT)
    Devices(workspace.engine).request_action(device_id, "collect_logs")
    http = TestClient(fast)  # no lifespan: the recorder speaks HTTP only
    poll = http.get(f"/edge/v1/devices/{device_id}/desired", params={"since": -1, "wait": 5},
                    headers=_auth(credential))
    assert poll.status_code == 200 and poll.headers["x-content-type-options"] == "nosniff"
    assert poll.json() == Devices(workspace.engine).poll(credential, device_id)
    action = poll.json()["actions"][0]["id"]
    report = http.post(f"/edge/v1/devices/{device_id}/report", headers=_auth(credential),
                       json={"reported": {"agent_version": "t", "skills": []}, "logs": ["hello"],
                             "actions_done": [action]})
    assert report.json() == {"schema": "modelyard.edge-report-ack/1", "ok": True, "stored": None}
    assert reached == []
    twin = Devices(workspace.engine).twin(device_id)
    assert twin["reported"]["agent_version"] == "t" and twin["pending_actions"] == []
    assert [line["line"] for line in Devices(workspace.engine).logs(device_id)["lines"]] == ["hello"]

    odd_queries = ["since=1.5", "wait=abc", "wait=31", "wait=-1", "since=1&since=2", "since=1&other=2"]
    for query in odd_queries:
        assert http.get(f"/edge/v1/devices/{device_id}/desired?{query}",
                        headers=_auth(credential)).status_code == 299
    odd_bodies = [b"[1, 2]", b'{"reported": NaN}', b'{"a": 1e999}', b"[" * 70 + b"]" * 70, b'{"a": ',
                  json.dumps({"events": [{"skill": "s"}]}).encode(), b"x" * (LIMIT + 1)]
    for body in odd_bodies:
        answer = http.post(f"/edge/v1/devices/{device_id}/report", content=body,
                           headers={**_auth(credential), "Content-Type": "application/json"})
        assert answer.status_code == 299
    http.post(f"/edge/v1/devices/{device_id}/report", content=b"{}",
              headers={**_auth(credential), "Content-Type": "text/plain"})
    http.post(f"/edge/v1/devices/{device_id}/report", json={})  # no credential
    http.request("PUT", f"/edge/v1/devices/{device_id}/report", json={}, headers=_auth(credential))
    assert [query for method, query, _ in reached if method == "GET"] == odd_queries
    assert [body for method, _, body in reached if method == "POST"] == [*odd_bodies, b"{}", b"{}"]
    assert reached[-1][0] == "PUT"


def test_errors_keep_the_apps_shapes_and_a_credential_stays_scoped(platform):
    workspace, _, http, devices = platform
    (a_id, a_secret), (b_id, _) = devices["cam-a"], devices["cam-b"]
    poll, report = f"/edge/v1/devices/{a_id}/desired", f"/edge/v1/devices/{a_id}/report"
    missing = http.get(poll)
    assert "missing device credential" in _error(missing, 401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    _error(http.get(poll, headers=_auth("myd_dev_forged")), 401, "unauthorized")
    _error(http.get(f"/edge/v1/devices/{b_id}/desired", headers=_auth(a_secret)), 403, "forbidden")
    _error(http.post(f"/edge/v1/devices/{b_id}/report", headers=_auth(a_secret), json={}), 403, "forbidden")
    assert "wait" in _error(http.get(poll, params={"wait": 31}, headers=_auth(a_secret)), 422, "invalid_input")
    _error(http.post(report, content=b'{"reported": NaN}', headers={**_auth(a_secret),
                                                                    "Content-Type": "application/json"}),
           422, "invalid_input")
    _error(http.post(report, content=b"[" * 70 + b"]" * 70, headers={**_auth(a_secret),
                                                                     "Content-Type": "application/json"}),
           400, "bad_request")
    _error(http.post(report, json=[1], headers=_auth(a_secret)), 422, "invalid_input")
    _error(http.post(report, json={"logs": ["x" * LIMIT]}, headers=_auth(a_secret)), 413, "payload_too_large")
    _error(http.get("/api/v1/edge/devices", headers=_auth(a_secret)), 403, "forbidden")
    # revocation holds at once: nothing caches a credential
    assert http.get(poll, headers=_auth(a_secret)).status_code == 200
    Devices(workspace.engine).deregister(a_id)
    assert "revoked" in _error(http.get(poll, headers=_auth(a_secret)), 401, "unauthorized")
    _error(http.post(report, json={"reported": {}}, headers=_auth(a_secret)), 401, "unauthorized")
    user_token = TokenStore(workspace.engine).create(f"someone-{a_id}", "admin")[1]
    _error(http.get(f"/edge/v1/devices/{b_id}/desired", headers=_auth(user_token)), 401, "unauthorized")


def test_a_held_poll_answers_at_its_deadline_or_wakes_on_a_change(platform):
    workspace, _, http, devices = platform
    device_id, credential = devices["cam-b"]
    path = f"/edge/v1/devices/{device_id}/desired"
    version = http.get(path, headers=_auth(credential)).json()["version"]
    held = http.get(path, params={"since": version, "wait": 0.3}, headers=_auth(credential)).json()
    assert held["version"] == version and held["actions"] == []
    answers = []
    poller = threading.Thread(target=lambda: answers.append(
        http.get(path, params={"since": version, "wait": 30}, headers=_auth(credential)).json()))
    poller.start()
    action = Devices(workspace.engine).request_action(device_id, "restart_skill", "inference")
    poller.join(timeout=60)
    assert answers and answers[0]["version"] == version + 1 and answers[0]["actions"] == [action]


def test_a_report_that_changes_nothing_writes_only_last_seen_in_a_batch(platform):
    workspace, app, http, devices = platform
    device_id, credential = devices["cam-a"]
    fleet = Devices(workspace.engine)
    body = {"reported": {"agent_version": "t", "skills": [{"name": "s", "status": "running"}]}}
    assert http.post(f"/edge/v1/devices/{device_id}/report", json=body, headers=_auth(credential)).status_code == 200
    app.state.last_seen.flush()
    first = fleet.twin(device_id)
    writes = []
    from sqlalchemy import event

    def count_writes(_conn, _cursor, statement, *_):
        writes.extend([statement] if statement.lstrip().upper().startswith(("UPDATE", "INSERT")) else [])

    event.listen(workspace.engine, "before_cursor_execute", count_writes)
    try:
        for _ in range(3):
            assert http.post(f"/edge/v1/devices/{device_id}/report", json=body,
                             headers=_auth(credential)).status_code == 200
        assert writes == []  # the same state again: no transaction, last seen waits for the batch
        app.state.last_seen.flush()
        assert len(writes) == 1 and "last_seen_at" in writes[0]
    finally:
        event.remove(workspace.engine, "before_cursor_execute", count_writes)
    again = fleet.twin(device_id)
    assert again["reported"] == first["reported"]  # reported_at: when the state last changed
    assert again["last_seen_at"] > first["last_seen_at"]
    changed = {"reported": {**body["reported"], "skills": []}, "alarms": [{"kind": "disk_nearly_full"}]}
    http.post(f"/edge/v1/devices/{device_id}/report", json=changed, headers=_auth(credential))
    assert fleet.twin(device_id)["reported"]["skills"] == []
    assert [a["kind"] for a in fleet.alarms(device_id)] == ["disk_nearly_full"]


def test_last_seen_times_are_written_by_the_timer_and_dropped_once_the_workspace_closes(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    fleet = Devices(workspace.engine)
    _, code = fleet.register("cam")
    device, credential = fleet.activate(code)
    before = fleet.get("cam")["last_seen_at"]
    batch = LastSeen(workspace.engine, flush_s=0.05)
    try:
        fleet.poll(credential, device["id"], batch)
        deadline = time.monotonic() + 30
        while fleet.get("cam")["last_seen_at"] == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fleet.get("cam")["last_seen_at"] > before
    finally:
        workspace.close()
    batch.note(device["id"])  # closed: nothing pending, no timer to reopen the database
    assert batch._pending == {} and batch._timer is None
