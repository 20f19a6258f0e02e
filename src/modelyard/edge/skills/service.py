"""The EI-style ready API: one small FastAPI app that serves skills over REST (imported by the platform and
``modelyard skills serve``, never by the device agent).

``POST /v1/skills/{name}`` takes the skill's input as JSON (``{"text"}``; ``{"image_b64"}`` PNG/JPEG; ``{"wav_b64"}``;
``{"query", "documents"}`` for semantic search) and answers ``{"skill", "version", "events", "latency_ms"}``.
``GET /v1/skills/{name}/health`` runs the skill's self-check (the health check). Errors are
``{"error": {"code", "message"}}`` with a 4xx for bad input. ``modelyard skills serve NAME...`` runs it with uvicorn.
"""

from __future__ import annotations

import base64
import io
import threading
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from modelyard.core.errors import InvalidInput, ModelyardError

MAX_BODY_BYTES = 16 * 1024 * 1024


def decode_item(name: str, body: dict) -> dict:
    """Turn a JSON body into the skill's item (images decoded to RGB arrays); InvalidInput on a bad body."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    item = dict(body)
    if "image_b64" in item:
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            data = base64.b64decode(item.pop("image_b64"), validate=True)
            with Image.open(io.BytesIO(data)) as image:
                item["frame"] = np.asarray(image.convert("RGB"))
        except (ValueError, UnidentifiedImageError, OSError) as exc:
            raise InvalidInput(f"image_b64 is not a base64 PNG/JPEG image: {exc}") from exc
    if "wav_b64" in item:
        try:
            item["wav"] = base64.b64decode(item.pop("wav_b64"), validate=True)
        except ValueError as exc:
            raise InvalidInput(f"wav_b64 is not base64: {exc}") from exc
    return item


def create_app(names: list[str] | None = None, home=None):
    """The app serving ``names`` (default: every built-in skill); each skill loads on its first request."""
    from modelyard.edge.skills.builtin.registry import builtin_dirs, load_builtin, standalone_builtins
    from modelyard.edge.skills.manifest import load_manifest

    served = list(names or standalone_builtins())
    unknown = [n for n in served if n not in builtin_dirs()]
    if unknown:
        raise InvalidInput(f"not a built-in skill: {', '.join(unknown)} (one of {', '.join(builtin_dirs())})")
    manifests = {n: load_manifest(builtin_dirs()[n]) for n in served}
    locks = {n: threading.Lock() for n in served}  # a skill's engine serves one request at a time
    app = FastAPI(title="Modelyard skills", docs_url=None, redoc_url=None)

    def error(exc: ModelyardError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    def served_skill(name: str):
        if name not in manifests:
            raise ModelyardError(f"this service does not serve {name!r} (it serves {', '.join(served)})",
                                 code="not_found", status=404)
        return manifests[name]

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "skills": served}

    @app.get("/v1/skills")
    def list_served():
        return {"skills": [{"name": m.name, "version": m.version, "inputs": m.inputs} for m in manifests.values()]}

    @app.post("/v1/skills/{name}")
    async def invoke(name: str, request: Request):
        try:
            manifest = served_skill(name)
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise ModelyardError(f"the body is over {MAX_BODY_BYTES} bytes", code="payload_too_large",
                                     status=413)
            import json

            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise InvalidInput(f"the body is not JSON: {exc}") from exc
            item = decode_item(name, body)
            started = time.perf_counter()
            with locks[name]:
                logic = load_builtin(name)
                try:
                    events = logic.process(item, {"id": "rest", "config": body.get("config") or {}})
                except (ValueError, TypeError, KeyError) as exc:
                    raise InvalidInput(f"{name}: {exc}") from exc
            return {"skill": name, "version": manifest.version, "events": events,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except ModelyardError as exc:
            return error(exc)

    @app.get("/v1/skills/{name}/health")
    def health(name: str):
        try:
            served_skill(name)
            with locks[name]:
                result = load_builtin(name).self_check()
        except ModelyardError as exc:
            return error(exc)
        return JSONResponse({"skill": name, **result}, status_code=200 if result.get("ok") else 503)

    return app
