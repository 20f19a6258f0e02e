"""One replica of a skill service: ``python -m modelyard.edge.skill_replica --config FILE --index K --listen-fd N
--control-fd M`` (the supervisor starts it for a revision whose traffic entry is of kind ``skill``; same arguments,
sockets, error file and exit code as :mod:`modelyard.deploy.replica`).

It loads the skill from the market, refuses it when its content digest is not the one deployed, sets it up with the
revision's config and runs it once on a sample input *before* it accepts anything. It answers the skill's REST API
(the body of ``modelyard skills serve``: ``{"text"}``, ``{"image_b64"}``, ``{"wav_b64"}``...) on ``POST /v1/predict``
(what the platform's ``/api/v1/services/S/predict`` forwards to) and ``POST /v1/skills/NAME``, the self-check on
``GET /v1/skills/NAME/health``, and ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/models`` with the token rules of a
model service (:class:`modelyard.deploy.model_server.TokenCheck`); every answer is counted in the service's metrics
and access log under the entry's ref (``skill:NAME@VERSION``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from modelyard.deploy.replica import EXIT_LOAD_FAILED


class LoadedSkill:
    """The skill's logic module, set up, with the lock that makes it serve one request at a time (a skill's engine
    is not thread-safe)."""

    def __init__(self, home, entry: dict, config: dict):
        from modelyard.core.errors import Conflict
        from modelyard.edge.skill_services import content_digest
        from modelyard.edge.skills.manifest import load_logic, load_manifest
        from modelyard.edge.skills.market import sample_item, skill_dir

        folder = skill_dir(home, entry["skill"], entry["version"])
        digest = content_digest(folder)
        if digest != entry["digest"]:
            raise Conflict(f"skill {entry['skill']} {entry['version']} changed since it was deployed (content "
                           f"{digest[:19]}..., deployed {entry['digest'][:19]}...); deploy it again")
        self.manifest = load_manifest(folder)
        self.ref = entry["ref"]
        self.logic = load_logic(folder, self.manifest)
        self.logic.setup(config)
        self.config = config
        self.lock = threading.Lock()
        if self.manifest.inputs[0] != "audio":  # an audio sample needs the speech-synthesis skill: not a warm-up
            self.process(sample_item(self.manifest), {})

    def process(self, item: dict, config: dict) -> list:
        """Run the skill on one item; ``config`` (the request's) overlays the deployed config as a channel's does."""
        from modelyard.core.errors import InvalidInput
        from modelyard.edge.skills.manifest import validate_config

        if config:
            if not isinstance(config, dict):
                raise InvalidInput("config must be a JSON object")
            validate_config(self.manifest, self.config, {"request": {"config": config}})
        with self.lock:
            try:
                return self.logic.process(item, {"id": "rest", "config": {**self.config, **config}})
            except (ValueError, TypeError, KeyError) as exc:
                raise InvalidInput(f"{self.manifest.name}: {exc}") from exc

    def self_check(self) -> dict:
        check = getattr(self.logic, "self_check", None)
        if not callable(check):
            return {"ok": None, "reason": "the skill defines no self_check()"}
        with self.lock:
            return check()


def build_skill_app(server, skill: LoadedSkill):
    """The Starlette app of one skill replica; ``server`` is a :class:`ModelServer` without versions, for its token
    check, metrics and access log."""
    from fastapi.encoders import jsonable_encoder
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from modelyard.core.errors import InvalidInput, ModelyardError, NotFound, Unauthorized
    from modelyard.deploy.model_server import _error, _read_body
    from modelyard.edge.skills.service import decode_item

    name, ref = skill.manifest.name, skill.ref

    async def authenticate(request) -> str:
        who = server.tokens.allowed(request.headers)
        return who if who is not None else await run_in_threadpool(server.tokens.authenticate, request.headers)

    async def authorize(request) -> str:
        return "public" if server.public else await authenticate(request)

    def failure(exc: ModelyardError):
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return _error(exc.status, exc.code, exc.message, headers)

    async def invoke(request):
        started = time.perf_counter()
        status, reason, size_in, body_out, caller = 200, None, 0, b"", None
        try:
            caller = await authorize(request)
            asked = request.path_params.get("name", name)
            if asked != name:
                raise NotFound(f"this service serves the skill {name}, not {asked!r}")
            raw = await _read_body(request, server.max_body_bytes)
            size_in = len(raw)
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise InvalidInput(f"the body is not JSON: {exc}") from exc
            item = await run_in_threadpool(decode_item, name, body)
            config = body.get("config") or {}
            events = await run_in_threadpool(skill.process, item, config)
            body_out = json.dumps(jsonable_encoder(
                {"skill": name, "version": skill.manifest.version, "events": events,
                 "latency_ms": round((time.perf_counter() - started) * 1000, 2)})).encode()
            response = Response(body_out, media_type="application/json", headers={"x-modelyard-model": ref})
        except ModelyardError as exc:
            status, reason = exc.status, exc.code
            response = failure(exc)
        except Exception as exc:  # noqa: BLE001 - a skill failure is this request's 500, never the replica's end
            status, reason = 500, "inference_error"
            response = _error(500, "inference_error", f"{type(exc).__name__}: {exc}".splitlines()[0])
        server.record(request, started, ref, status, reason, 1 if status == 200 else 0, size_in, len(body_out),
                      None, caller)
        return response

    async def health(request):
        try:
            await authorize(request)
            if request.path_params["name"] != name:
                raise NotFound(f"this service serves the skill {name}, not {request.path_params['name']!r}")
        except ModelyardError as exc:
            return failure(exc)
        result = await run_in_threadpool(skill.self_check)
        return JSONResponse(jsonable_encoder({"skill": name, **result}),
                            status_code=503 if result.get("ok") is False else 200)

    def describe() -> dict:
        return {"schema": "modelyard.service-models/1", "service": server.service, "revision": server.revision,
                "replica": server.replica,
                "skills": [{"ref": ref, "skill": name, "version": skill.manifest.version,
                            "inputs": skill.manifest.inputs, "outputs": skill.manifest.outputs}]}

    async def models(request):
        try:
            await authorize(request)
        except ModelyardError as exc:
            return failure(exc)
        return JSONResponse(describe())

    async def healthz(_request):
        return JSONResponse({"status": "ok", "service": server.service, "replica": server.replica})

    async def readyz(request):
        # open like a model replica's; what it serves only for a caller that could ask /v1/models
        ready = {"status": "ready", "service": server.service, "revision": server.revision,
                 "replica": server.replica}
        try:
            await authorize(request)
        except ModelyardError:
            return JSONResponse(ready)
        return JSONResponse({**ready, "models": [ref], "backends": {ref: "skill:cpu"}})

    async def metrics(request):
        from modelyard.deploy.metrics import render

        try:
            await authenticate(request)  # operational data: a token even on a public service
        except ModelyardError as exc:
            return _error(exc.status, exc.code, exc.message, {"WWW-Authenticate": "Bearer"})
        body = await run_in_threadpool(render, server.metrics_dir)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def not_found(request, _exc):
        return _error(404, "not_found", f"no route {request.url.path}; use POST /v1/predict or "
                                        f"POST /v1/skills/{name}")

    async def wrong_method(request, _exc):
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    routes = [
        Route("/v1/predict", invoke, methods=["POST"]),
        Route("/v1/skills/{name}", invoke, methods=["POST"]),
        Route("/v1/skills/{name}/health", health, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: wrong_method})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelyard.edge.skill_replica")
    parser.add_argument("--config", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    error_file = Path(config["run_dir"]) / f"replica-{args.index}.error"
    error_file.unlink(missing_ok=True)
    listen = socket.socket(fileno=args.listen_fd)
    control = socket.socket(fileno=args.control_fd)
    home = Path(config["home"])
    try:
        from modelyard.core.settings import Settings
        from modelyard.store.workspace import Workspace

        workspace = Workspace.open(Settings.load(config["home"]), create=False)
        entry = config["traffic"][0]
        skill = LoadedSkill(home, entry, config["config"].get("skill_config") or {})
    except Exception as exc:  # noqa: BLE001 - reported to the supervisor through the error file
        traceback.print_exc()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        error_file.write_text(message, encoding="utf-8")
        return EXIT_LOAD_FAILED
    import uvicorn

    from modelyard.deploy.model_server import ModelServer, TokenCheck
    from modelyard.deploy.state import internal_key

    tokens = TokenCheck(workspace.engine, internal_key(home), home)
    server = ModelServer(config["service"], config["revision"], args.index, [], config["public"], tokens,
                         config["max_body_bytes"], Path(config["metrics_dir"]), Path(config["access_log"]))
    print(f"replica {args.index} of {config['service']} revision {config['revision']} serving {skill.ref} "
          f"(skill, pid {os.getpid()})", flush=True)
    uv_config = uvicorn.Config(build_skill_app(server, skill), lifespan="off", access_log=False,
                               log_level="warning", timeout_graceful_shutdown=10, timeout_keep_alive=30)
    uvicorn.Server(uv_config).run(sockets=[listen, control])
    server.close()
    workspace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
