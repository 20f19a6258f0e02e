"""The web console: server-rendered pages (Jinja2, autoescaped) with htmx for live parts, served by
``modelyard server`` at ``/`` beside the REST API (``/api/v1``) and its docs (``/docs``).

``mount(app)`` adds it to the API app. Every page calls the same service functions as its REST twin; labeling and
edge pages plug in as further ``pages_*.py`` routers listed in ``PAGES`` plus a ``web.nav_item(...)`` for the side
navigation.
"""

from __future__ import annotations

import logging

from modelyard.core.errors import ModelyardError

log = logging.getLogger("modelyard.console")

PAGES = ("pages_core", "pages_jobs", "pages_data", "pages_runs", "pages_models", "pages_services", "pages_automl",
         "pages_migrations", "pages_monitoring", "pages_edge", "pages_labeling",
         "pages_skills", "pages_ladder")


class SecurityHeaders:
    """Pure ASGI: CSP without inline script, no framing, no sniffing on every console response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        from modelyard.server.console.web import CSP, is_console

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        console = is_console(scope["path"])

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if console:
                    headers += [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                                (b"referrer-policy", b"same-origin")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def too_large_page(path: str, limit: int) -> bytes | None:
    """The page a console upload over the body limit gets (the API keeps its JSON error)."""
    from html import escape

    from modelyard.server.console.web import is_console

    if not is_console(path):
        return None
    mib = limit / (1024 * 1024)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Upload too large · Modelyard</title>'
            f'<link rel="stylesheet" href="/static/console/console.css"></head><body><main class="bare"><h1>Upload too '
            f'large</h1><div class="alert">The upload is larger than this server accepts ({mib:.0f} MiB, the '
            f'<code>max_body_bytes</code> setting). Nothing was stored.</div><p><a href="{escape(path)}">Back</a> · '
            f'<a href="/">Overview</a></p></main></body></html>').encode()


def mount(app) -> None:
    """Serve the console from ``app`` (the REST API's FastAPI app)."""
    import importlib

    from fastapi.exceptions import RequestValidationError
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from modelyard.core.ids import new_id
    from modelyard.server.console import session as sessions
    from modelyard.server.console import web
    from modelyard.server.limits import BodyTooLarge

    app.state.console_key = sessions.signing_key(app.state.workspace.home)
    app.mount("/static/console", StaticFiles(directory=str(web.HERE / "static")), name="console-static")
    for name in PAGES:
        app.include_router(importlib.import_module(f"modelyard.server.console.{name}").router,
                           include_in_schema=False)

    api_handlers = dict(app.exception_handlers)

    async def sign_in(request, exc: sessions.SignInRequired):
        return web.sign_in_redirect(request, exc.reason)

    async def csrf_refused(request, _exc: sessions.CsrfRefused):
        return web.error_page(request, 403, "Form expired",
                              "This form was missing its security token or it was stale (for example, from before "
                              "you signed in again). Reload the page and try again; nothing was changed.")

    def console_first(exc_class, title_for):
        api = api_handlers.get(exc_class)

        async def handler(request, exc):
            if not web.is_console(request.url.path):
                return await api(request, exc)
            status, title, message = title_for(exc)
            if status >= 500:
                reference = new_id("err")
                log.error("console error %s", reference, exc_info=exc)
                message = f"internal error ({type(exc).__name__}); reference {reference} in the server log"
            return web.error_page(request, status, title, message)

        return handler

    def modelyard_error(exc: ModelyardError):
        return exc.status, {403: "Not allowed", 404: "Not found", 409: "Conflict"}.get(exc.status, "Error"), exc.message

    def http_error(exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return exc.status_code, "Not found" if exc.status_code == 404 else "Error", detail

    def validation_error(exc: RequestValidationError):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'form'}: {e.get('msg', 'invalid')}"
                 for e in exc.errors()[:5]]
        return 422, "Invalid input", "; ".join(parts) or "invalid input"

    async def too_large(request, exc: BodyTooLarge):
        # raised while a form body streams in; a page for the console, the API's JSON error elsewhere
        from fastapi.responses import HTMLResponse, JSONResponse

        limit = request.app.state.workspace.settings.max_body_bytes
        page = too_large_page(request.url.path, limit)
        if page is None:
            return JSONResponse({"error": {"code": "payload_too_large",
                                           "message": f"request body exceeds the limit of {limit} bytes"}},
                                status_code=413)
        return HTMLResponse(page, status_code=413)

    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(sessions.SignInRequired, sign_in)
    app.add_exception_handler(sessions.CsrfRefused, csrf_refused)
    app.add_exception_handler(ModelyardError, console_first(ModelyardError, modelyard_error))
    app.add_exception_handler(StarletteHTTPException, console_first(StarletteHTTPException, http_error))
    app.add_exception_handler(RequestValidationError, console_first(RequestValidationError, validation_error))
    app.add_exception_handler(Exception, console_first(Exception, lambda exc: (500, "Internal error", "")))
    app.add_middleware(SecurityHeaders)
