"""Edge pages: the fleet, a device's twin/logs/alarms with acknowledge and its events per channel, a deployment's
per-device states with cancel; editors act, viewers only read."""

from __future__ import annotations

import base64
import io

from console_support import csrf_of
from PIL import Image

from modelyard.core.ids import utcnow


def _fleet(workspace):
    from modelyard.edge.devices import Devices
    from modelyard.edge.rollouts import DeploymentSpec, Rollouts
    from modelyard.store.schema_edge import edge_bundles

    devices = Devices(workspace.engine)
    device, code = devices.register("cam-1", {"site": "s"})
    devices.activate(code)
    devices.report(device["id"], {"logs": ["skill inference started"],
                                  "alarms": [{"kind": "bundle_refused", "message": "signature <bad>"}]})
    with workspace.engine.begin() as conn:
        conn.execute(edge_bundles.insert().values(id="b1", model_ref="m@1", target="cpu-x86", digest="0" * 64,
                                                  size=1, manifest={}, created_at=utcnow()))
    return Rollouts(workspace.engine).create(DeploymentSpec(bundle="b1", device="cam-1"))


def test_edge_pages_show_the_fleet_and_act(as_role, sqlite_workspace):
    deployment = _fleet(sqlite_workspace)
    viewer = as_role("viewer")
    fleet = viewer.get("/edge")
    assert fleet.status_code == 200 and "cam-1" in fleet.text and deployment["id"] in fleet.text
    assert "signature &lt;bad&gt;" in fleet.text
    device = viewer.get("/edge/devices/cam-1")
    assert device.status_code == 200 and "skill inference started" in device.text and "Acknowledge" not in device.text
    editor = as_role("editor")
    device = editor.get("/edge/devices/cam-1")
    alarm_id = device.text.split("/edge/alarms/")[1].split("/ack")[0]
    acked = editor.post(f"/edge/alarms/{alarm_id}/ack", data={"csrf": csrf_of(device.text)})
    assert acked.status_code in (200, 303)
    assert "acknowledged by editor-user" in editor.get("/edge/devices/cam-1").text
    page = editor.get(f"/edge/deployments/{deployment['id']}")
    assert "pending" in page.text and "Cancel" in page.text
    editor.post(f"/edge/deployments/{deployment['id']}/cancel", data={"csrf": csrf_of(page.text)})
    assert "cancelled" in editor.get(f"/edge/deployments/{deployment['id']}").text


def test_the_device_page_shows_events_per_channel_with_thumbnails_escaped(as_role, sqlite_workspace):
    from modelyard.edge.devices import Devices
    from modelyard.edge.events import EdgeEvents

    workspace = sqlite_workspace
    devices = Devices(workspace.engine)
    device, code = devices.register("dev-a")
    devices.activate(code)
    device_id = device["id"]
    jpeg = io.BytesIO()
    Image.new("RGB", (16, 12), (50, 0, 0)).save(jpeg, format="JPEG")
    image_b64 = base64.b64encode(jpeg.getvalue()).decode()
    EdgeEvents(workspace).ingest(device_id, [
        {"skill": "yard", "channel": "<b>gate</b>", "ts": 1, "event": {"count": 1}, "thumbnail_jpeg_b64": image_b64},
        {"skill": "yard", "channel": "cam1", "ts": 2, "event": {"label": "<script>alert(1)</script>"}}],
        [{"skill": "yard", "channel": "cam1", "reason": "csf", "inference": {"scores": [0.4]},
          "image_jpeg_b64": image_b64}])
    page = as_role("viewer").get("/edge/devices/dev-a")
    assert page.status_code == 200
    assert "&lt;b&gt;gate&lt;/b&gt;" in page.text and "<b>gate</b>" not in page.text
    assert "<script>alert(1)</script>" not in page.text
    thumbnail = page.text.split('src="/edge/events/')[1].split('"')[0]
    image = as_role("viewer").get(f"/edge/events/{thumbnail}")
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert image.headers["content-type"] == "image/jpeg" and image.headers["x-content-type-options"] == "nosniff"
    assert "edge-hard-yard" in page.text
    # an offset past what the database can count shows the last (empty) page, not a server error
    assert as_role("viewer").get("/edge/devices/dev-a", params={"offset": 2**70}).status_code == 200
    filtered = as_role("viewer").get("/edge/devices/dev-a", params={"channel": "cam1"})
    assert "Channel cam1" in filtered.text and "Channel &lt;b&gt;" not in filtered.text
