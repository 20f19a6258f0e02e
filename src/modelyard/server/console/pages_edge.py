"""Edge: the fleet (devices, online state, what they run), deployments with each device's state, open alarms; a
device's twin, log tail, alarms (acknowledge), the events of its skills per channel (with thumbnails) and its hard
examples; a deployment's per-device state machine (cancel).
REST twins: ``/api/v1/edge/devices...`` (``.../events``, ``.../hard-examples``), ``/api/v1/edge/deployments...``,
``/api/v1/edge/alarms...``; the pages call the same functions."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request

from modelyard.server.console.web import Viewer, action, nav_item, page, redirect, render

router = APIRouter()
nav_item("edge", "/edge", "Edge", "viewer")


def _devices(request: Request):
    from modelyard.edge.devices import Devices

    return Devices(request.app.state.workspace.engine)


def _rollouts(request: Request):
    from modelyard.edge.rollouts import Rollouts

    return Rollouts(request.app.state.workspace.engine)


@router.get("/edge")
def edge_page(request: Request, viewer: Viewer = Depends(page())):
    rollouts = _rollouts(request)
    rollouts.advance()
    return render(request, "edge.html", viewer, title="Edge", devices=_devices(request).list(),
                  deployments=rollouts.list()[:50], alarms=_devices(request).alarms())


def _events(request: Request):
    from modelyard.edge.events import EdgeEvents

    return EdgeEvents(request.app.state.workspace)


@router.get("/edge/devices/{device}")
def device_page(request: Request, device: str, channel: str | None = None, offset: int = 0,
                viewer: Viewer = Depends(page())):
    devices = _devices(request)
    twin = devices.twin(device)
    reported = {k: v for k, v in twin["reported"].items() if k != "hardware"}
    from modelyard.edge.events import MAX_OFFSET

    events = _events(request).list(device, channel=channel or None, offset=min(max(0, offset), MAX_OFFSET), limit=50)
    by_channel: dict[str, list] = {}
    for event in events["items"]:
        by_channel.setdefault(event["channel"], []).append(event)
    return render(request, "edge_device.html", viewer, title=f"Device {twin['name']}", twin=twin,
                  desired_json=json.dumps(twin["desired"], indent=2), reported_json=json.dumps(reported, indent=2),
                  hardware=twin["reported"].get("hardware") or {}, logs=devices.logs(device, 200)["lines"],
                  alarms=devices.alarms(device, include_acknowledged=True), events=events, by_channel=by_channel,
                  hard_examples=_events(request).hard_examples(device, limit=20))


@router.get("/edge/events/{event_id}/thumbnail")
def event_thumbnail(request: Request, event_id: str, viewer: Viewer = Depends(page())):
    from fastapi.responses import Response

    return Response(_events(request).thumbnail(event_id), media_type="image/jpeg")


@router.get("/edge/deployments/{deployment_id}")
def deployment_page(request: Request, deployment_id: str, viewer: Viewer = Depends(page())):
    rollouts = _rollouts(request)
    rollouts.advance()
    return render(request, "edge_deployment.html", viewer, title=f"Deployment {deployment_id}",
                  deployment=rollouts.get(deployment_id))


@router.post("/edge/alarms/{alarm_id}/ack")
def acknowledge(request: Request, alarm_id: str, viewer: Viewer = Depends(action())):
    alarm = _devices(request).acknowledge(alarm_id, viewer.name)
    return redirect(f"/edge/devices/{alarm['device']}", f"Alarm {alarm_id} acknowledged.")


@router.post("/edge/deployments/{deployment_id}/cancel")
def cancel(request: Request, deployment_id: str, _: Viewer = Depends(action())):
    _rollouts(request).cancel(deployment_id)
    return redirect(f"/edge/deployments/{deployment_id}", "Deployment cancelled.")
