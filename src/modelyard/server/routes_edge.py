"""Edge fleet REST API. User routes under ``/api/v1/edge`` (tokens and roles as everywhere); the device protocol under
``/edge/v1`` authenticates with a device credential only and acts for that one device (another device's id: 403).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import Forbidden, InvalidInput, NotFound
from modelyard.edge.devices import Devices, parse_labels
from modelyard.server.auth import Principal, _bearer, require
from modelyard.server.responses import Job, documented

router = APIRouter(tags=["edge"])
agent_router = APIRouter(tags=["edge agent"])
MAX_LONG_POLL_S = 30.0


class EdgeBody(BaseModel):
    """An edge body; its ``schema`` field names its shape (``modelyard.edge-*/1``, see docs/edge.md)."""

    model_config = ConfigDict(extra="allow")


class RegisterDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict)
    activation_ttl_s: int = Field(default=24 * 3600, ge=1, le=30 * 24 * 3600)


class DeviceAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(pattern="^(restart_skill|collect_logs)$")
    skill: str | None = None


class PackageBundle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200, description="MODEL@VERSION (or alias)")
    target: str = Field(description="cpu-x86, cpu-arm, openvino-cpu or ascend-310")
    int8: bool = True
    prune: bool = True
    max_accuracy_drop: float = Field(default=0.01, ge=0, le=1)
    calibration: str | None = Field(default=None, min_length=1, max_length=200,
                                    description="DATASET@VERSION for INT8 calibration (default: the model's lineage)")


def _workspace(request: Request):
    return request.app.state.workspace


def _devices(request: Request) -> Devices:
    return Devices(_workspace(request).engine)


def _rollouts(request: Request):
    from modelyard.edge.rollouts import Rollouts

    return Rollouts(_workspace(request).engine)


# -- devices ------------------------------------------------------------------------------------------------------
@router.post("/edge/devices", status_code=201, responses=documented(EdgeBody, 409, 413, 422, status=201))
def register_device(body: RegisterDevice, request: Request, principal: Principal = Depends(require("editor"))):
    """Register a device; the answer holds its one-time activation code (shown once, expires)."""
    device, code = _devices(request).register(body.name, body.labels, principal.name, body.activation_ttl_s)
    return {"schema": "modelyard.edge-device/1", **device, "activation_code": code}


@router.get("/edge/devices", responses=documented(EdgeBody, 422))
def list_devices(request: Request, selector: str = Query("", description="k=v,k2=v2"),
                 _: Principal = Depends(require("viewer"))):
    labels = parse_labels([s for s in selector.split(",") if s.strip()])
    return {"schema": "modelyard.edge-device-list/1", "items": _devices(request).list(labels)}


@router.get("/edge/devices/{device}", responses=documented(EdgeBody, 404))
def device_twin(device: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The device twin: desired vs reported state, hardware, last seen, online."""
    return _devices(request).twin(device)


@router.delete("/edge/devices/{device}", responses=documented(EdgeBody, 404, 409))
def deregister_device(device: str, request: Request, _: Principal = Depends(require("editor"))):
    """Deregister: the device's credential stops working at once."""
    return {"schema": "modelyard.edge-device/1", **_devices(request).deregister(device)}


@router.post("/edge/devices/{device}/actions", status_code=201,
             responses=documented(EdgeBody, 404, 409, 413, 422, status=201))
def device_action(device: str, body: DeviceAction, request: Request, _: Principal = Depends(require("editor"))):
    return {"schema": "modelyard.edge-action/1", **_devices(request).request_action(device, body.kind, body.skill)}


@router.get("/edge/devices/{device}/logs", responses=documented(EdgeBody, 404, 422))
def device_logs(device: str, request: Request, tail: int = Query(200, ge=1, le=5000),
                _: Principal = Depends(require("viewer"))):
    return _devices(request).logs(device, tail)


@router.get("/edge/alarms", responses=documented(EdgeBody, 404))
def list_alarms(request: Request, device: str | None = None, all: bool = False,  # noqa: A002 - the query name
                _: Principal = Depends(require("viewer"))):
    return {"schema": "modelyard.edge-alarm-list/1", "items": _devices(request).alarms(device, all)}


@router.post("/edge/alarms/{alarm_id}/ack", responses=documented(EdgeBody, 404, 409))
def acknowledge_alarm(alarm_id: str, request: Request, principal: Principal = Depends(require("editor"))):
    return {"schema": "modelyard.edge-alarm/1", **_devices(request).acknowledge(alarm_id, principal.name)}


# -- events and hard examples ---------------------------------------------------------------------------------------
def _events(request: Request):
    from modelyard.edge.events import EdgeEvents

    return EdgeEvents(_workspace(request))


@router.get("/edge/devices/{device}/events", responses=documented(EdgeBody, 404, 422))
def device_events(device: str, request: Request, channel: str | None = None, skill: str | None = None,
                  offset: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(50, ge=1, le=500),
                  _: Principal = Depends(require("viewer"))):
    """The events the device's skills emitted, newest first; filter by channel and skill, page with offset/limit."""
    return _events(request).list(device, channel=channel, skill=skill, offset=offset, limit=limit)


@router.get("/edge/events/{event_id}/thumbnail", responses=documented(None, 404, media_type="image/jpeg"))
def event_thumbnail(event_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The event's thumbnail (JPEG) when the skill attached one."""
    return Response(_events(request).thumbnail(event_id), media_type="image/jpeg")


@router.get("/edge/devices/{device}/hard-examples", responses=documented(EdgeBody, 404, 422))
def device_hard_examples(device: str, request: Request, channel: str | None = None,
                         offset: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(50, ge=1, le=500),
                         _: Principal = Depends(require("viewer"))):
    """Hard examples the device uploaded (deduplicated by image digest) and the labeling job each one is queued in."""
    return _events(request).hard_examples(device, channel=channel, offset=offset, limit=limit)


# -- bundles ------------------------------------------------------------------------------------------------------
@router.post("/edge/bundles", status_code=201, responses=documented(Job, 404, 413, 422, status=201))
def package_bundle(body: PackageBundle, request: Request, principal: Principal = Depends(require("editor"))):
    """Queue an ``edge.package`` job that packages a registered ONNX model for a device class into a signed bundle
    (pruning and INT8, each gated). The answer is the job; follow it under ``/api/v1/jobs/{id}``; its result is the
    bundle."""
    from modelyard.core.trust import Caller
    from modelyard.jobs.queue import JobQueue

    job = JobQueue(_workspace(request)).submit("edge.package", body.model_dump(), owner=principal.name,
                                               caller=Caller(principal.name, principal.role))
    return job.to_dict()


class PackageSkill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skill: str = Field(min_length=1, max_length=100, description="a skill in the market (modelyard skills list)")
    version: str | None = Field(default=None, description="default: the newest")
    target: str = Field(default="cpu-x86", description="cpu-x86, cpu-arm or openvino-cpu")


@router.post("/edge/skill-bundles", status_code=201, responses=documented(EdgeBody, 404, 413, 422, status=201))
def package_skill_bundle(body: PackageSkill, request: Request, principal: Principal = Depends(require("editor"))):
    """Package a market skill into a signed bundle (deploy it with ``skill`` set to the skill's name)."""
    from modelyard.edge.skill_bundles import package_skill

    return package_skill(_workspace(request), body.skill, body.version, body.target, created_by=principal.name)


@router.get("/edge/bundles", responses=documented(EdgeBody))
def list_bundles(request: Request, _: Principal = Depends(require("viewer"))):
    from modelyard.edge.bundles import Bundles

    return {"schema": "modelyard.edge-bundle-list/1", "items": Bundles(_workspace(request)).list()}


@router.get("/edge/bundles/{bundle_id}", responses=documented(EdgeBody, 404))
def get_bundle(bundle_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    from modelyard.edge.bundles import Bundles

    return Bundles(_workspace(request)).get(bundle_id)


# -- deployments --------------------------------------------------------------------------------------------------
@router.post("/edge/deployments", status_code=201, responses=documented(EdgeBody, 404, 413, 422, status=201))
def create_deployment(body: dict, request: Request, principal: Principal = Depends(require("editor"))):
    """Deploy a bundle (``modelyard.edge.rollouts.DeploymentSpec``); supersedes older deployments on its devices."""
    from pydantic import ValidationError

    from modelyard.edge.rollouts import DeploymentSpec

    try:
        spec = DeploymentSpec.model_validate(body)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        raise InvalidInput(f"deployment spec {where}: {problem['msg'].removeprefix('Value error, ')}") from None
    return _rollouts(request).create(spec, principal.name)


@router.get("/edge/deployments", responses=documented(EdgeBody))
def list_deployments(request: Request, _: Principal = Depends(require("viewer"))):
    rollouts = _rollouts(request)
    rollouts.advance()
    return {"schema": "modelyard.edge-deployment-list/1", "items": rollouts.list()}


@router.get("/edge/deployments/{deployment_id}", responses=documented(EdgeBody, 404))
def get_deployment(deployment_id: str, request: Request, _: Principal = Depends(require("viewer"))):
    rollouts = _rollouts(request)
    rollouts.advance()
    return rollouts.get(deployment_id)


@router.post("/edge/deployments/{deployment_id}/cancel", responses=documented(EdgeBody, 404, 409))
def cancel_deployment(deployment_id: str, request: Request, _: Principal = Depends(require("editor"))):
    return _rollouts(request).cancel(deployment_id)


# -- the device protocol ------------------------------------------------------------------------------------------
class Activate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=200)
    hardware: dict = Field(default_factory=dict)
    agent_version: str = ""


def _device(request: Request, device_id: str) -> str:
    return Devices(_workspace(request).engine).authenticate(_bearer(request), device_id)


@agent_router.post("/edge/v1/activate", responses=documented(EdgeBody, 401, 413, 422))
def activate_device(body: Activate, request: Request):
    """Exchange a one-time activation code for a device credential and the platform's signing key."""
    from modelyard.edge.bundles import public_key_hex

    device, credential = _devices(request).activate(body.code, body.hardware)
    return {"schema": "modelyard.edge-activation/1", "device_id": device["id"], "name": device["name"],
            "credential": credential, "public_key": public_key_hex(_workspace(request).home)}


@agent_router.get("/edge/v1/devices/{device_id}/desired", responses=documented(EdgeBody, 401, 403, 422))
async def desired_state(device_id: str, request: Request, since: int = Query(-1),
                        wait: float = Query(0.0, ge=0, le=MAX_LONG_POLL_S)):
    """Long-poll: answers at once when the desired state's version differs from ``since``, else within ``wait`` s."""
    return await long_poll(request.app, device_id, _bearer(request), since, wait)


async def long_poll(app, device_id: str, secret: str | None, since: int, wait: float) -> dict:
    """The desired state once its version differs from ``since`` or ``wait`` seconds have passed (the FastAPI route
    and the device protocol's fast path, ``edge_protocol.py``, both answer with this).

    One read up front; a poll held to its deadline answers with that read (the watcher saw the version unchanged),
    one woken by a change reads again."""
    import asyncio

    from modelyard.server.edge_longpoll import watch_for

    devices = Devices(app.state.workspace.engine)
    last_seen = getattr(app.state, "last_seen", None)
    loop = asyncio.get_running_loop()
    threads = app.state.edge_threads
    state = await loop.run_in_executor(threads, devices.poll, secret, device_id, last_seen)
    if wait > 0 and state["version"] == since and await watch_for(app).wait(device_id, since, wait):
        state = await loop.run_in_executor(threads, devices.poll, secret, device_id, last_seen)
    return state


@agent_router.post("/edge/v1/devices/{device_id}/report", responses=documented(EdgeBody, 401, 403, 413, 422))
def report_state(device_id: str, body: dict, request: Request):
    """Reported state, log lines, alarms, actions done; advances the deployments that involve this device."""
    return store_report(request.app, device_id, _bearer(request), body)


def store_report(app, device_id: str, secret: str | None, body: dict) -> dict:
    """Authenticate, store and ack one report (the FastAPI route and ``edge_protocol.py``'s fast path)."""
    from modelyard.edge.events import EdgeEvents
    from modelyard.edge.rollouts import Rollouts

    workspace = app.state.workspace
    Devices(workspace.engine).report(device_id, body, secret=secret, last_seen=getattr(app.state, "last_seen", None))
    stored = None
    if body.get("events") or body.get("hard_examples"):
        stored = EdgeEvents(workspace).ingest(device_id, body.get("events"), body.get("hard_examples"))
    Rollouts(workspace.engine).advance(device_id)
    return {"schema": "modelyard.edge-report-ack/1", "ok": True, "stored": stored}


_RANGE = re.compile(r"^bytes=(\d+)-$")


@agent_router.get("/edge/v1/devices/{device_id}/bundles/{bundle_id}",
                  responses=documented(None, 401, 403, 404, 416, media_type="application/octet-stream"))
def download_bundle(device_id: str, bundle_id: str, request: Request):
    """A bundle this device is meant to run (in its desired state or one of its deployments); ``Range: bytes=N-``
    resumes."""
    import sqlalchemy as sa

    from modelyard.edge.bundles import Bundles
    from modelyard.store.schema_edge import edge_deployment_devices, edge_deployments, edge_devices

    _device(request, device_id)
    engine = _workspace(request).engine
    with engine.connect() as conn:
        desired = conn.execute(sa.select(edge_devices.c.desired).where(edge_devices.c.id == device_id)).scalar_one()
        deployed = conn.execute(sa.select(edge_deployments.c.id).join(
            edge_deployment_devices, edge_deployment_devices.c.deployment_id == edge_deployments.c.id).where(
            edge_deployment_devices.c.device_id == device_id, edge_deployments.c.bundle_id == bundle_id)).first()
    if deployed is None and bundle_id not in {s.get("bundle") for s in desired.get("skills", [])}:
        raise Forbidden(f"bundle {bundle_id} is not deployed to this device")
    try:
        path = Bundles(_workspace(request)).path(bundle_id)
    except NotFound:
        raise
    size = path.stat().st_size
    header = request.headers.get("range")
    if header:
        match = _RANGE.match(header.strip())
        if match is None:
            raise InvalidInput("only 'Range: bytes=N-' is supported")
        start = int(match.group(1))
        if start >= size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
        return Response(data, status_code=206, media_type="application/octet-stream",
                        headers={"Content-Range": f"bytes {start}-{size - 1}/{size}", "X-Bundle-Size": str(size)})
    return FileResponse(path, media_type="application/octet-stream", headers={"X-Bundle-Size": str(size)})
