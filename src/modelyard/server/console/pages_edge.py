"""Edge: the fleet (devices, online state, what they run), deployments with each device's state, open alarms; a
device's twin, log tail and alarms (acknowledge); a deployment's per-device state machine (cancel).
REST twins: ``/api/v1/edge/devices...``, ``/api/v1/edge/deployments...``, ``/api/v1/edge/alarms...``; the pages call
the same functions."""

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


@router.get("/edge/devices/{device}")
def device_page(request: Request, device: str, viewer: Viewer = Depends(page())):
    devices = _devices(request)
    twin = devices.twin(device)
    reported = {k: v for k, v in twin["reported"].items() if k != "hardware"}
    return render(request, "edge_device.html", viewer, title=f"Device {twin['name']}", twin=twin,
                  desired_json=json.dumps(twin["desired"], indent=2), reported_json=json.dumps(reported, indent=2),
                  hardware=twin["reported"].get("hardware") or {}, logs=devices.logs(device, 200)["lines"],
                  alarms=devices.alarms(device, include_acknowledged=True))


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
