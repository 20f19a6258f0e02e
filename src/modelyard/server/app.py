"""``create_app(workspace)``: the FastAPI application. Routes live in ``routes_*.py``, one noun each."""

from __future__ import annotations

import logging
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelyard.core.errors import ModelyardError
from modelyard.core.extras import missing_dependency
from modelyard.core.ids import new_id
from modelyard.core.version import __version__
from modelyard.edge.devices import LastSeen
from modelyard.server.auth import Principal
from modelyard.server.limits import BodyLimitMiddleware, BodyTooLarge, StrictJSONMiddleware
from modelyard.server.responses import AUTH_ERRORS, documented
from modelyard.store.workspace import Workspace

log = logging.getLogger("modelyard.server")
SECURITY_SCHEME = "bearerAuth"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            where = f"{loc[0]} field '{'.'.join(loc[1:])}'" if len(loc) > 1 else loc[0]
        else:
            where = ".".join(loc) or "request"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def close_app(app: FastAPI) -> None:
    """Release what the app holds beyond its workspace (the pooled client to service replicas)."""
    from modelyard.server.routes_labelstudio import close_predictors
    from modelyard.server.routes_services import close_upstream

    close_upstream(app)
    close_predictors(app)
    app.state.last_seen.close()
    app.state.edge_threads.shutdown(wait=False)


def server_paths_hidden(message: str, home: Path) -> str:
    """``message`` without the server's own paths: the workspace becomes ``<workspace>``, a scratch folder under
    the temp dir disappears (its file's name stays), the temp dir becomes ``<tmp>``.

    A network caller learns nothing of the server's file system from an error; the in-process SDK (whose user owns
    the files) keeps the full paths.
    """
    for root in sorted({str(home), str(Path(home).resolve())}, key=len, reverse=True):
        message = message.replace(root, "<workspace>")
    scratch = tempfile.gettempdir()
    message = re.sub(re.escape(scratch) + r"/[^/\s'\"]+/", "", message)
    return message.replace(scratch, "<tmp>")


def create_app(workspace: Workspace, local_principal: Principal | None = None, console: bool = True) -> FastAPI:
    """The API over ``workspace``.

    Args:
        workspace: an opened workspace.
        local_principal: who a request without a token is, for the in-process SDK only (the caller already has
            the workspace's files). ``None`` for every network-facing server: then every route under ``/api/v1``
            needs a token.
        console: serve the web console at ``/`` (default True). The in-process SDK calls the API only and leaves
            it out: importing the console's pages is a fifth of the start-up of every CLI command run in-process.
    """
    from swagger_ui_bundle import swagger_ui_path

    from modelyard.server import (
        routes_active_learning,
        routes_blobs,
        routes_data,
        routes_edge,
        routes_gc,
        routes_jobs,
        routes_labeling,
        routes_labelstudio,
        routes_migrations,
        routes_models,
        routes_monitoring,
        routes_runs,
        routes_services,
        routes_skills,
        routes_system,
        routes_tokens,
    )

    app = FastAPI(
        title="Modelyard API",
        version=__version__,
        description="Self-hosted AI development platform. Authenticate with `Authorization: Bearer <token>`.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.workspace = workspace
    app.state.local_principal = local_principal
    app.state.last_seen = LastSeen(workspace.engine)  # devices' last-seen times, written once a second
    # the device protocol's database work (edge_protocol.py): a plain pool costs less per call than anyio's, and as
    # many threads as anyio's, so polls do not queue behind reports waiting for SQLite's write lock
    app.state.edge_threads = ThreadPoolExecutor(max_workers=40, thread_name_prefix="edge-protocol")

    @app.exception_handler(ModelyardError)
    async def _modelyard_error(_request: Request, exc: ModelyardError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        message = exc.message if local_principal is not None else server_paths_hidden(exc.message, workspace.home)
        return _error(exc.status, exc.code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        return _error(422, "invalid_input", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        if isinstance(exc.__cause__, BodyTooLarge) or isinstance(exc.__context__, BodyTooLarge):
            # FastAPI wraps what the body limit raises while it parses a JSON body into a generic 400
            limit = workspace.settings.max_body_bytes
            return _error(413, "payload_too_large", f"request body exceeds the limit of {limit} bytes")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), message, exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        missing = missing_dependency(exc)  # an optional package this server lacks: 503 naming the extra
        if missing is not None:
            return _error(missing.status, missing.code, missing.message)
        # details (SQL, paths, hosts) stay in the server log; the caller learns the error's type and a reference
        reference = new_id("err")
        log.exception("unhandled error %s", reference)
        return _error(500, "internal_error", f"internal error ({type(exc).__name__}); reference {reference} "
                      "in the server log")

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Modelyard API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    # the device protocol: device credentials only, outside the user API. Matched first: a fleet's polls and reports
    # are most of the requests, and a request is matched route by route (py-spy: a fifth of the event loop's time
    # went to walking the user API's routes before these)
    app.include_router(routes_edge.agent_router)
    app.include_router(routes_system.router)
    app.include_router(routes_labelstudio.router)  # Label Studio calls <base>/health, /setup, /predict
    # every /api/v1 route authenticates (401) and checks the caller's role (403) before anything else
    authenticated = documented(None, *AUTH_ERRORS)
    # routes_gc before routes_blobs: /blobs/gc before any /blobs/{parameter}
    for module in (routes_jobs, routes_tokens, routes_gc, routes_blobs, routes_data, routes_runs, routes_models,
                   routes_services, routes_monitoring, routes_migrations, routes_active_learning, routes_labeling,
                   routes_edge, routes_skills):
        app.include_router(module.router, prefix="/api/v1", responses=authenticated)
    from modelyard.server import console as console_pages

    if console:
        console_pages.mount(app)
    from modelyard.core.jsonsafe import MAX_DEPTH

    # the body limit wraps (runs before) the JSON check, so the check never buffers more than the limit
    # POST /blobs and PUT /blobs/uploads/{id} store their bodies as bytes, whatever the Content-Type says
    app.add_middleware(StrictJSONMiddleware, max_depth=MAX_DEPTH, skip_suffixes=("/predict",),
                       raw_paths=r"/api/v1/blobs(/uploads/[^/]+)?")
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=workspace.settings.max_body_bytes,
                       page_for=console_pages.too_large_page)
    from modelyard.server.edge_protocol import DeviceProtocol

    # outermost: a fleet's polls and reports skip the user API's middlewares and routing (edge_protocol.py)
    app.add_middleware(DeviceProtocol, api=app, max_body_bytes=workspace.settings.max_body_bytes,
                       hide_paths=None if local_principal is not None
                       else lambda message: server_paths_hidden(message, workspace.home))
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document plus what it cannot infer: the bearer scheme on every ``/api/v1`` operation (optional on
    predict: a public service needs none), and the one error body in place of FastAPI's own 422 shape (the
    handlers above answer ``{"error": {...}}``, never ``{"detail": [...]}``)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "An API token (modelyard tokens create): viewer reads, editor writes, admin manages tokens.",
    }
    schemas = components.get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/v1/"):
                operation["security"] = [{SECURITY_SCHEME: []}]
                if path.endswith("/predict") and method == "post":
                    operation["security"].append({})
            validation = operation.get("responses", {}).get("422")
            if validation is not None:
                validation["description"] = "A field, parameter or spec is invalid; the message names it."
                validation["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    app.openapi_schema = document
    return document
