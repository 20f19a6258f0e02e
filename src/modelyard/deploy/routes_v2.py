"""The Open Inference Protocol's routes on a replica, next to ``/v1``: health, server and model metadata, model
readiness and ``POST /v2/models/{name}[/versions/{v}]/infer``.

``{name}`` is the service's name (the whole traffic split, canary included) or the model name of versions in the
split; ``/versions/{v}`` pins one version by its registry number. An infer request goes through the same decode
slots, dynamic batcher, metrics and access log as ``/v1/predict``; a sticky key comes from the
``X-Modelyard-Key`` header, ``?key=`` or the request's ``parameters.key``. Errors are the protocol's shape,
``{"error": "message"}``.
"""

from __future__ import annotations

import time

from modelyard.core.errors import ModelyardError, Unauthorized
from modelyard.deploy.protocol import MAX_JSON_BYTES, Decoded, costly, validate
from modelyard.deploy.protocol_v2 import (
    HEADER_LENGTH,
    ModelNotFound,
    encode_response,
    error_body,
    parse_request,
    read_inputs,
    tensor_metadata,
)
from modelyard.deploy.state import KEY_HEADER


def model_name(ref: str) -> str:
    return ref.rsplit("@", 1)[0]


def version_number(ref: str) -> str:
    return ref.rsplit("@", 1)[1]


def candidates(server, name: str, version: str | None) -> list:
    """The loaded versions ``name`` (and ``version``) address, or ModelNotFound naming what the service serves."""
    chosen = [v for v in server.versions if name in (server.service, model_name(v.ref))]
    if version is not None:
        chosen = [v for v in chosen if version_number(v.ref) == version]
    if not chosen:
        names = sorted({server.service} | {model_name(v.ref) for v in server.versions})
        served = ", ".join(v.ref for v in server.versions)
        what = f"model {name!r}" + (f" version {version!r}" if version is not None else "")
        raise ModelNotFound(f"{what} is not served here: use one of {names} (versions {served})")
    return chosen


def v2_routes(server, authorize, read_body) -> list:
    """The routes, given the replica's ModelServer, its ``authorize(request)`` coroutine (raises Unauthorized
    unless the service is public or the caller has a token) and ``read_body(request, limit, what)`` (raises
    PayloadTooLarge)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from modelyard.core.version import __version__

    def error(exc: ModelyardError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return Response(error_body(exc.message), status_code=exc.status, media_type="application/json",
                        headers=headers)

    async def live(_request):
        return JSONResponse({"live": True})

    async def ready(_request):
        # a replica answers only once every version is loaded and warmed up: answering at all is being ready
        return JSONResponse({"ready": True})

    async def server_metadata(_request):
        return JSONResponse({"name": "modelyard", "version": __version__, "extensions": ["binary_tensor_data"]})

    def addressed(request):
        return candidates(server, request.path_params["name"], request.path_params.get("version"))

    async def model_metadata(request):
        try:
            await authorize(request)
            chosen = addressed(request)
        except ModelyardError as exc:
            return error(exc)
        described = max(chosen, key=lambda v: v.weight)
        return JSONResponse({
            "name": request.path_params["name"], "versions": [version_number(v.ref) for v in chosen],
            "platform": f"modelyard_{described.backend.replace(':', '_')}",
            "inputs": [tensor_metadata(t) for t in described.signature.inputs],
            "outputs": [tensor_metadata(t) for t in described.signature.outputs]})

    async def model_ready(request):
        try:
            await authorize(request)
            addressed(request)
        except ModelyardError as exc:
            return error(exc)
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    def prepare(body: bytes, header_length: str | None, chosen: list, key: str | None):
        request = parse_request(body, header_length)
        key = key if key is not None else request.key
        version = server.choose(key, among=chosen)
        decoded = read_inputs(request, version.signature)
        feeds, rows = validate(version.signature, Decoded(decoded, key, True), version.missing_ok)
        return request, version, feeds, rows, key

    async def infer(request):
        started = time.perf_counter()
        version = feeds = outputs = None
        status, reason, rows, size_in, body_out = 200, None, 0, 0, b""
        key, caller = request.headers.get(KEY_HEADER) or request.query_params.get("key"), None
        try:
            caller = await authorize(request)
            chosen = addressed(request)
            header_length = request.headers.get(HEADER_LENGTH)
            if request.headers.get("content-encoding", "identity").lower() != "identity":
                raise ModelyardError("compressed infer requests are not supported: send them uncompressed",
                                     code="unsupported_media_type", status=415)
            # a JSON-only body holds the GIL while it parses: the JSON limit; binary tensors: the body limit
            body = await (read_body(request, server.max_body_bytes) if header_length is not None
                          else read_body(request, min(server.max_body_bytes, MAX_JSON_BYTES), "a JSON body"))
            size_in = len(body)
            content_type = None if header_length is None else "application/octet-stream"
            if costly(body, content_type):
                async with server.decode_slots(content_type):
                    parsed, version, feeds, rows, key = await run_in_threadpool(prepare, body, header_length,
                                                                                chosen, key)
            else:
                parsed, version, feeds, rows, key = prepare(body, header_length, chosen, key)
            server.metrics.queue_depth.labels(server.service, version.ref).inc()
            try:
                outputs = await version.batcher.submit(feeds, rows)
            finally:
                server.metrics.queue_depth.labels(server.service, version.ref).dec()
            body_out, head_length = encode_response(outputs, parsed, request.path_params["name"],
                                                    version_number(version.ref))
            headers = {"x-modelyard-model": version.ref}
            if head_length is None:
                response = Response(body_out, media_type="application/json", headers=headers)
            else:
                headers[HEADER_LENGTH] = str(head_length)
                response = Response(body_out, media_type="application/octet-stream", headers=headers)
        except ModelyardError as exc:
            status, reason = exc.status, exc.code
            response = error(exc)
        except Exception as exc:  # noqa: BLE001 - a model failure is this request's 500, never the replica's end
            status, reason = 500, "inference_error"
            detail = str(exc).splitlines()[0] if str(exc) else ""
            response = Response(error_body(f"{type(exc).__name__}: {detail}"), status_code=500,
                                media_type="application/json")
        if getattr(server, "capture", None) is not None:  # monitoring sees OIP traffic as it sees /v1/predict
            from modelyard.deploy.monitoring.capture import observe

            observe(server.capture, request, response, version.ref if version else "none", feeds, outputs, rows,
                    time.perf_counter() - started, status)
        server.record(request, started, version.ref if version else "none", status, reason, rows, size_in,
                      len(body_out), key, caller)
        return response

    async def unknown(request):
        return Response(error_body(f"no route {request.method} {request.url.path} in the Open Inference "
                                   "Protocol"), status_code=404, media_type="application/json")

    model = "/v2/models/{name}"
    pinned = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route(model, model_metadata, methods=["GET"]),
        Route(pinned, model_metadata, methods=["GET"]),
        Route(model + "/ready", model_ready, methods=["GET"]),
        Route(pinned + "/ready", model_ready, methods=["GET"]),
        Route(model + "/infer", infer, methods=["POST"]),
        Route(pinned + "/infer", infer, methods=["POST"]),
        Route("/v2/{rest:path}", unknown, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
