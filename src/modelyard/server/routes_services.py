"""Real-time services: deploy, list, show, scale, stop/start, traffic split, rollback, logs, metrics, and the
predict proxies ``/api/v1/services/S/predict`` and ``/api/v1/services/S/v2/...`` (the Open Inference Protocol; a
token unless the service is public)."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import NotFound, Unavailable
from modelyard.core.ids import MAX_STORED_INT
from modelyard.deploy.services import DeploySpec
from modelyard.server.auth import Principal, require
from modelyard.server.responses import PredictAnswer, Service, ServiceDeleted, ServiceList, ServiceStats, documented

router = APIRouter(tags=["services"])
# inference-header-content-length: the Open Inference Protocol's binary tensor data extension, both ways;
# x-modelyard-request-id: the id a captured prediction is given feedback by (monitoring)
_PROXY_HEADERS = ("content-type", "accept", "x-modelyard-key", "inference-header-content-length",
                  "x-modelyard-request-id")
_RESPONSE_HEADERS = ("content-type", "x-modelyard-model", "inference-header-content-length",
                     "x-modelyard-request-id")
_UPSTREAM_LOCK = threading.Lock()


# the replica's answers, passed through: JSON, or the npy/safetensors bytes the Accept header asked for
_PREDICT_RESPONSES = {
    **documented(PredictAnswer, 400, 401, 403, 404, 413, 415, 422, 500, 503,
                 description="The outputs (JSON, or binary for Accept: application/x-npy or x-safetensors)."),
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
# read from the raw body (the replica decodes it against the model's signature), so declared here by hand
_PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["inputs"],
            "properties": {"inputs": {"description": "input name -> nested list (one-input models: a list)"},
                           "key": {"type": "string", "description": "sticky key for a canary split"}}}},
        "application/x-npy": _BINARY, "application/x-safetensors": _BINARY, "image/png": _BINARY,
        "image/jpeg": _BINARY,
    },
}
_PREDICT_RESPONSES[200]["content"] = {
    "application/x-npy": _BINARY, "application/x-safetensors": _BINARY,
}


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    replicas: int = Field(ge=1, le=16)


class Traffic(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traffic: dict[str, float] = Field(description='model version -> percent, e.g. {"resnet@3": 90, "resnet@4": 10}')


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    revision: int | None = Field(default=None, ge=1, le=MAX_STORED_INT,
                                 description="default: the revision live before the current")


def _store(request: Request):
    from modelyard.deploy.services import ServiceStore

    return ServiceStore(request.app.state.workspace)


def _view(request: Request, service) -> dict:
    from modelyard.deploy.supervisor import ensure_running
    from modelyard.deploy.views import service_view

    workspace = request.app.state.workspace
    if service.state == "running":
        ensure_running(workspace.settings, only_if_services=False)
    return service_view(workspace.home, service)


@router.post("/services", status_code=201, responses=documented(Service, 404, 409, 413, 422, status=201))
def deploy(body: DeploySpec, request: Request, principal: Principal = Depends(require("editor"))):
    """Deploy a model version as a service (or a new revision of an existing one). Answers at once with status
    ``deploying``; poll ``GET /services/{name}`` until the revision is ``live`` or ``failed``."""
    return _view(request, _store(request).deploy(body, created_by=principal.name))


@router.get("/services", responses=documented(ServiceList))
def list_services(request: Request, _: Principal = Depends(require("viewer"))):
    return {"schema": "modelyard.service-list/1", "items": [_view(request, s) for s in _store(request).list()]}


@router.get("/services/{name}", responses=documented(Service, 404))
def get_service(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    return _view(request, _store(request).get(name))


@router.post("/services/{name}/scale", responses=documented(Service, 404, 409, 413, 422))
def scale(name: str, body: Scale, request: Request, _: Principal = Depends(require("editor"))):
    return _view(request, _store(request).scale(name, body.replicas))


@router.post("/services/{name}/stop", responses=documented(Service, 404, 409))
def stop(name: str, request: Request, _: Principal = Depends(require("editor"))):
    return _view(request, _store(request).stop(name))


@router.post("/services/{name}/start", responses=documented(Service, 404, 409),
             description="Start a stopped service on its live revision. Answers at once; poll GET /services/{name} "
                         "until it is ready (the CLI and SDK wait).")
def start(name: str, request: Request, _: Principal = Depends(require("editor"))):
    return _view(request, _store(request).start(name))


@router.put("/services/{name}/traffic", responses=documented(Service, 404, 409, 413, 422))
def set_traffic(name: str, body: Traffic, request: Request, principal: Principal = Depends(require("editor"))):
    return _view(request, _store(request).set_traffic(name, body.traffic, created_by=principal.name))


@router.post("/services/{name}/rollback", responses=documented(Service, 404, 409, 413, 422))
def rollback(name: str, request: Request, body: Rollback | None = None,
             principal: Principal = Depends(require("editor"))):
    revision = body.revision if body else None
    return _view(request, _store(request).rollback(name, revision, created_by=principal.name))


@router.delete("/services/{name}", responses=documented(ServiceDeleted, 404, 409))
def delete(name: str, request: Request, _: Principal = Depends(require("editor"))):
    """Delete a service; a running one is stopped first (``stopped`` says so): its replicas finish in-flight
    requests and exit."""
    stopped = _store(request).delete(name)
    return {"schema": "modelyard.service-deleted/1", "name": name, "stopped": stopped}


@router.get("/services/{name}/logs", response_class=Response,
            responses=documented(None, 404, 422, media_type="text/plain", description="The log lines."))
def logs(name: str, request: Request, source: str = Query("events", description="events, access or replica"),
         replica: int | None = Query(None, ge=0, le=1024),
         revision: int | None = Query(None, ge=1, le=MAX_STORED_INT),
         lines: int = Query(200, ge=1, le=100_000), _: Principal = Depends(require("viewer"))):
    """The service's events (what the supervisor did), its access log (one JSON line per request) or its
    replicas' own output."""
    from modelyard.deploy.views import service_logs

    _store(request).get(name)
    text = service_logs(request.app.state.workspace.home, name, source, replica, lines, revision)
    return Response(text, media_type="text/plain; charset=utf-8")


def upstream_client(app):
    """The app's one pooled HTTP client to its services' replicas (created on first use, thread-safe).

    NOTE: a client per call costs an SSL context and a new connection each time (~20 ms); this one lives as long
    as the app and :func:`close_upstream` closes it with the app."""
    import httpx

    client = getattr(app.state, "upstream", None)
    if client is not None:
        return client
    with _UPSTREAM_LOCK:
        client = getattr(app.state, "upstream", None)
        if client is None:
            client = httpx.Client(timeout=120.0, limits=httpx.Limits(max_connections=256,
                                                                     max_keepalive_connections=64))
            app.state.upstream = client
    return client


def close_upstream(app) -> None:
    """Close the pooled client of :func:`upstream_client`, if the app made one."""
    client = getattr(app.state, "upstream", None)
    if client is not None:
        app.state.upstream = None
        client.close()


def _forward(request: Request, service, method: str, path: str, body: bytes = b"",
             content_type: str | None = None) -> Response:
    import httpx

    from modelyard.deploy.state import INTERNAL_HEADER, internal_key

    if service.state != "running" or not service.port:
        raise Unavailable(f"service {service.name!r} is {service.state}; start it first")
    host = "127.0.0.1" if service.host in ("0.0.0.0", "::") else service.host
    headers = {k: v for k, v in request.headers.items() if k.lower() in _PROXY_HEADERS}
    if content_type:
        headers["content-type"] = content_type
    headers[INTERNAL_HEADER] = internal_key(request.app.state.workspace.home)
    url = f"http://{host}:{service.port}{path}"
    params = dict(request.query_params)
    http = upstream_client(request.app)
    for attempt in range(2):
        try:
            upstream = http.request(method, url, content=body, headers=headers, params=params)
            break
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            # predict is a pure function of its body: retrying once on a replica that died mid-request is safe
            if attempt:
                raise Unavailable(f"service {service.name!r} does not answer at {url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise Unavailable(f"service {service.name!r} did not answer in time: {exc}") from exc
    out = {k: v for k, v in upstream.headers.items() if k.lower() in _RESPONSE_HEADERS}
    return Response(upstream.content, status_code=upstream.status_code, headers=out)


def _authorized_service(request: Request, name: str):
    """The service, once the caller may use it (one trip to the thread pool: one service read, one token read)."""
    try:
        service = _store(request).get_row(name)
    except NotFound:
        # authenticate before saying "not found", so callers without a token cannot probe service names
        require("viewer")(request)
        raise
    if not service.public:
        require("viewer")(request)
    return service


@router.post("/services/{name}/predict", response_class=Response, responses=_PREDICT_RESPONSES,
             openapi_extra={"requestBody": _PREDICT_BODY})
async def predict(name: str, request: Request):
    """Proxy to the service's ``POST /v1/predict`` (same bodies and answers). Needs a token unless the service
    is public."""
    from starlette.concurrency import run_in_threadpool

    service = await run_in_threadpool(_authorized_service, request, name)
    body = await request.body()
    return await run_in_threadpool(_forward, request, service, "POST", "/v1/predict", body)


@router.api_route("/services/{name}/v2/{path:path}", methods=["GET", "POST"], response_class=Response,
                  include_in_schema=False)
@router.api_route("/services/{name}/v2", methods=["GET"], response_class=Response, include_in_schema=False)
async def open_inference_protocol(name: str, request: Request, path: str = ""):
    """Proxy to the service's Open Inference Protocol routes (``/v2/...``), so a Triton or KServe client pointed at
    ``http://HOST:PORT/api/v1/services/NAME`` works with the platform's token. Errors are the protocol's shape,
    ``{"error": "message"}``, which those clients read."""
    from starlette.concurrency import run_in_threadpool

    from modelyard.core.errors import ModelyardError
    from modelyard.deploy.protocol_v2 import error_body

    try:
        service = await run_in_threadpool(_authorized_service, request, name)
        if any(part in (".", "..") for part in path.split("/")):
            # %2E%2E/metrics would reach the replica's other routes with the platform's internal key
            raise NotFound(f"no route /v2/{path} in the Open Inference Protocol")
        body = await request.body() if request.method == "POST" else b""
        return await run_in_threadpool(_forward, request, service, request.method, "/v2" + (f"/{path}" if path
                                                                                            else ""), body)
    except ModelyardError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return Response(error_body(exc.message), status_code=exc.status, media_type="application/json",
                        headers=headers)


@router.get("/services/{name}/stats", responses=documented(ServiceStats, 404, 422))
def stats(name: str, request: Request, buckets: int = Query(60, ge=1, le=1000),
          lines: int = Query(20_000, ge=1, le=50_000), _: Principal = Depends(require("viewer"))):
    """Requests/s, p50/p95 latency, errors and rows per request over time, from the service's access log."""
    from modelyard.deploy.access_stats import access_stats

    _store(request).get(name)
    return access_stats(request.app.state.workspace.home, name, buckets, lines)


@router.get("/services/{name}/metrics", response_class=Response,
            responses=documented(None, 404, 503, media_type="text/plain",
                                 description="Prometheus text exposition, summed over replicas."))
def metrics(name: str, request: Request, _: Principal = Depends(require("viewer"))):
    """The service's Prometheus metrics (all replicas)."""
    return _forward(request, _store(request).get(name), "GET", "/metrics")
