"""Device events and hard examples on the platform: ingestion from a device's report (bounded, deduplicated, queued for
labeling), listing per device and channel with filters and paging, thumbnails, the device credential's scope (403).
The console's device page: tests/server/console/test_edge_pages.py."""

from __future__ import annotations

import base64
import io

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.edge.devices import Devices
from modelyard.edge.events import MAX_HARD_EXAMPLES_PER_REPORT, EdgeEvents


def _jpeg(shade: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (shade, 0, 0)).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def _event(channel: str, n: int, **extra) -> dict:
    return {"skill": "yard", "version": "1.0", "channel": channel, "ts": 1_700_000_000 + n, "pts": n / 5,
            "event": {"rule": "zone-count", "count": n}, **extra}


def _hard(channel: str, shade: int) -> dict:
    return {"skill": "yard", "channel": channel, "ts": 1_700_000_100, "reason": "a box score in [0.3, 0.6]",
            "inference": {"scores": [0.4, 0.9]}, "image_jpeg_b64": _jpeg(shade)}


@pytest.fixture
def registered(sqlite_workspace):
    """Two activated devices: name -> (device id, credential)."""
    devices = Devices(sqlite_workspace.engine)
    credentials = {}
    for name in ("dev-a", "dev-b"):
        device, code = devices.register(name)
        credentials[name] = (device["id"], devices.activate(code)[1])
    return credentials


@pytest.fixture
def fleet(sqlite_workspace, registered):
    from fastapi.testclient import TestClient

    from modelyard.server.app import create_app
    from modelyard.store.tokens import TokenStore

    credentials = registered
    _, viewer = TokenStore(sqlite_workspace.engine).create("viewer-user", "viewer")
    with TestClient(create_app(sqlite_workspace)) as http:
        yield sqlite_workspace, http, credentials, viewer


def test_reports_store_events_and_hard_examples_per_channel_and_queue_them_for_labeling(fleet):
    workspace, http, credentials, viewer = fleet
    device_id, secret = credentials["dev-a"]
    auth = {"Authorization": f"Bearer {secret}"}
    events = [_event(f"cam{i % 3}", i, id=f"agent-event-{i:04d}") for i in range(7)]
    events[0]["thumbnail_jpeg_b64"] = _jpeg(200)
    events.append({"skill": "yard", "channel": "cam0", "event": "not an object"})  # left out, counted
    body = {"reported": {}, "events": events, "hard_examples": [_hard("cam2", 10), _hard("cam2", 10),
                                                                 _hard("cam1", 90)]}
    answer = http.post(f"/edge/v1/devices/{device_id}/report", json=body, headers=auth)
    assert answer.status_code == 200
    assert answer.json()["stored"] == {"events": 7, "hard_examples": 2, "duplicates": 1, "left_out": 1}
    # the agent resends a queued report: nothing new, the hard examples are deduplicated by image digest
    again = http.post(f"/edge/v1/devices/{device_id}/report", json=body, headers=auth).json()["stored"]
    assert again == {"events": 0, "hard_examples": 0, "duplicates": 10, "left_out": 1}

    user = {"Authorization": f"Bearer {viewer}"}
    listed = http.get("/api/v1/edge/devices/dev-a/events", headers=user).json()
    assert listed["total"] == 7 and listed["per_channel"] == {"cam0": 3, "cam1": 2, "cam2": 2}
    assert [e["event"]["count"] for e in listed["items"]] == [6, 5, 4, 3, 2, 1, 0]  # newest first
    page = http.get("/api/v1/edge/devices/dev-a/events", params={"channel": "cam0", "offset": 1, "limit": 1},
                    headers=user).json()
    assert page["total"] == 3 and [e["event"]["count"] for e in page["items"]] == [3]
    with_thumbnail = next(e for e in listed["items"] if e["thumbnail"])
    image = http.get(f"/api/v1/edge/events/{with_thumbnail['id']}/thumbnail", headers=user)
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert http.get(f"/api/v1/edge/events/{listed['items'][1]['id']}/thumbnail", headers=user).status_code == 404
    assert http.get("/api/v1/edge/devices/dev-a/events", params={"limit": 0}, headers=user).status_code == 422
    assert http.get("/api/v1/edge/devices/nope/events", headers=user).status_code == 404
    assert http.get("/api/v1/edge/devices/dev-b/events", headers=user).json()["total"] == 0

    hard = http.get("/api/v1/edge/devices/dev-a/hard-examples", headers=user).json()
    assert hard["total"] == 2 and {h["channel"] for h in hard["items"]} == {"cam1", "cam2"}
    assert {h["labeling_job"] for h in hard["items"]} == {"edge-hard-yard"}
    from modelyard.data.labeling.service import LabelingStore

    store = LabelingStore(workspace)
    job = store.get("edge-hard-yard")
    assert job.task == "detection" and sum(job.counts.values()) == 2
    queue = store.items("edge-hard-yard", hard=True)
    assert {i["item"] if isinstance(i, dict) else i.item for i in queue["items"]} == {h["item"] for h in hard["items"]}
    # the same frame from another device is that device's hard example: its own item in the skill's job
    assert EdgeEvents(workspace).ingest(credentials["dev-b"][0], [], [_hard("cam2", 10)])["hard_examples"] == 1
    assert sum(store.get("edge-hard-yard").counts.values()) == 3


def test_a_device_writes_only_its_own_events_and_reports_are_bounded(fleet):
    workspace, http, credentials, viewer = fleet
    a_id, a_secret = credentials["dev-a"]
    b_id, _ = credentials["dev-b"]
    auth = {"Authorization": f"Bearer {a_secret}"}
    forged = http.post(f"/edge/v1/devices/{b_id}/report", json={"events": [_event("cam0", 1)]}, headers=auth)
    assert forged.status_code == 403 and forged.json()["error"]["code"]
    assert http.get("/api/v1/edge/devices/dev-b/events", headers=auth).status_code == 403  # no user API either
    assert EdgeEvents(workspace).list("dev-b")["total"] == 0
    too_many = [_hard("cam0", 10 * shade) for shade in range(MAX_HARD_EXAMPLES_PER_REPORT + 3)]
    stored = EdgeEvents(workspace).ingest(a_id, [], too_many)
    assert stored["hard_examples"] == MAX_HARD_EXAMPLES_PER_REPORT and stored["left_out"] == 3
    oversized = {**_hard("cam0", 1), "image_jpeg_b64": base64.b64encode(b"\xff\xd8" + b"0" * 600_000).decode()}
    assert EdgeEvents(workspace).ingest(a_id, [], [oversized])["left_out"] == 1
    with pytest.raises(InvalidInput, match="limit"):
        EdgeEvents(workspace).list("dev-a", limit=501)


def _big_jpeg(width: int, height: int) -> str:
    """A small file that declares many pixels (a uniform frame compresses to almost nothing): within the byte
    bounds, over the pixel bounds."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 0).save(buffer, format="JPEG", quality=1)
    return base64.b64encode(buffer.getvalue()).decode()


def test_device_supplied_ids_bounds_and_bad_images_do_not_reach_other_devices_or_the_labeling_queue(fleet):
    workspace, http, credentials, viewer = fleet
    (a_id, a_secret), (b_id, b_secret) = credentials["dev-a"], credentials["dev-b"]
    user = {"Authorization": f"Bearer {viewer}"}
    # an event id is the agent's name for it on that device only: another device's event of the same id is stored
    for device_id, secret in ((a_id, a_secret), (b_id, b_secret)):
        stored = http.post(f"/edge/v1/devices/{device_id}/report", headers={"Authorization": f"Bearer {secret}"},
                           json={"events": [_event("cam0", 1, id="same-agent-id-01")]}).json()["stored"]
        assert stored["events"] == 1 and stored["duplicates"] == 0
    assert http.get("/api/v1/edge/devices/dev-b/events", headers=user).json()["total"] == 1
    # paging past what the database can count is a 422, not a 500
    too_far = http.get("/api/v1/edge/devices/dev-a/events", params={"offset": 2**70}, headers=user)
    assert too_far.status_code == 422 and too_far.json()["error"]["code"]
    assert http.get("/api/v1/edge/devices/dev-a/hard-examples", params={"offset": 2**70},
                    headers=user).status_code == 422

    events = EdgeEvents(workspace)
    # a truncated JPEG, a pixel bomb and an oversized thumbnail are left out at the door ...
    truncated = {**_hard("cam0", 1), "image_jpeg_b64": base64.b64encode(base64.b64decode(_jpeg(30))[:60]).decode()}
    bomb = {**_hard("cam0", 2), "image_jpeg_b64": _big_jpeg(5000, 4000)}
    big_thumbnail = _event("cam0", 3, thumbnail_jpeg_b64=_big_jpeg(1200, 1000))
    stored = events.ingest(a_id, [big_thumbnail], [truncated, bomb])
    assert stored["hard_examples"] == 0 and stored["left_out"] == 2
    assert not any(e["thumbnail"] for e in events.list("dev-a")["items"])
    # ... so they cannot block the device's later hard examples from the labeling queue
    assert events.ingest(a_id, [], [_hard("cam0", 120)])["hard_examples"] == 1
    assert [h["labeling_job"] for h in events.hard_examples("dev-a")["items"]] == ["edge-hard-yard"]


def test_a_labeling_job_another_server_process_opened_meanwhile_gets_the_hard_example(sqlite_workspace, registered,
                                                                                      monkeypatch):
    from modelyard.core.errors import NotFound
    from modelyard.data.labeling import rows

    workspace, credentials = sqlite_workspace, registered
    events = EdgeEvents(workspace)
    assert events.ingest(credentials["dev-a"][0], [], [_hard("cam0", 40)])["hard_examples"] == 1  # opens the job
    # the lock is per process: another server process's view, just before it opened the same job, is "not found"
    real_job_row, raced = rows.job_row, []

    def not_yet_opened(conn, name):
        if not raced:
            raced.append(name)
            raise NotFound(f"labeling job {name!r} not found")
        return real_job_row(conn, name)

    monkeypatch.setattr(rows, "job_row", not_yet_opened)
    assert events.ingest(credentials["dev-b"][0], [], [_hard("cam0", 80)])["hard_examples"] == 1
    assert raced and [h["labeling_job"] for h in events.hard_examples("dev-b")["items"]] == ["edge-hard-yard"]
