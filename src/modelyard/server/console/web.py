"""The console's machinery: templates (autoescaped), who is signed in, CSRF checks, security headers, paging, and
the HTML answers to errors. Pages live in ``pages_*.py``; each calls the same service functions as its REST twin."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from modelyard.core.errors import Forbidden
from modelyard.server.console import session as sessions
from modelyard.store.tokens import TokenStore, role_allows

HERE = Path(__file__).parent
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# paths that are not the console: the REST API and its docs keep their JSON errors and their own headers
NOT_CONSOLE = ("/api/", "/edge/v1/", "/docs", "/openapi.json", "/static/swagger", "/healthz", "/labelstudio/")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def is_console(path: str) -> bool:
    return not path.startswith(NOT_CONSOLE)


def _ago(value) -> str:
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    seconds = (datetime.now(UTC) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{max(0, int(seconds))} s ago"


def _num(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}g}"
    return str(value)


def _bytes(value) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.autoescape = True  # every .html is autoescaped already; this makes the rule independent of names
templates.env.filters.update(ago=_ago, num=_num, bytes=_bytes, urlquote=lambda v: quote(str(v), safe=""))


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, and what they may do on it."""

    session: sessions.Session
    csrf: str

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def role(self) -> str:
        return self.session.role

    def can(self, role: str) -> bool:
        return role_allows(self.role, role)

    @property
    def caller(self):
        """Who submits a job from the console: the same role checks on its spec as the API applies."""
        from modelyard.core.trust import Caller

        return Caller(self.name, self.role)


def _key(request: Request) -> bytes:
    return request.app.state.console_key


def current(request: Request) -> Viewer:
    """The signed-in viewer; ``SignInRequired`` (-> the sign-in page) when there is no valid session."""
    state = request.state
    if getattr(state, "console_viewer", None) is None:
        session = sessions.read(_key(request), request.cookies.get(sessions.COOKIE),
                                TokenStore(request.app.state.workspace.engine))
        state.console_viewer = Viewer(session, session.csrf(_key(request)))
    return state.console_viewer


def page(role: str = "viewer"):
    """Dependency: a signed-in viewer with at least ``role`` (reading a page)."""

    def dependency(request: Request) -> Viewer:
        viewer = current(request)
        if not viewer.can(role):
            raise Forbidden(f"this page needs the {role} role; you are signed in as {viewer.name} ({viewer.role})")
        return viewer

    dependency.__name__ = f"console_page_{role}"
    return dependency


def action(role: str = "editor"):
    """Dependency: a signed-in viewer with at least ``role`` whose request carries the session's CSRF token
    (hidden form field or ``X-CSRF-Token`` header). The role is checked on the server whatever the page showed."""

    async def dependency(request: Request) -> Viewer:
        viewer = current(request)
        given = request.headers.get(CSRF_HEADER)
        if not given:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                given = (await request.form()).get(CSRF_FIELD)
        sessions.check_csrf(viewer.csrf, given if isinstance(given, str) else None)
        if not viewer.can(role):
            raise Forbidden(f"this needs the {role} role; you are signed in as {viewer.name} ({viewer.role})")
        return viewer

    dependency.__name__ = f"console_action_{role}"
    return dependency


def render(request: Request, template: str, viewer: Viewer | None, status_code: int = 200, **context) -> HTMLResponse:
    context.setdefault("nav", template.split("_")[0].split(".")[0])
    context.setdefault("htmx", bool(request.headers.get("hx-request")))
    return templates.TemplateResponse(request, template, {"viewer": viewer, **context}, status_code=status_code)


def redirect(url: str, message: str | None = None) -> RedirectResponse:
    """303 after a successful form post (post/redirect/get), with an optional notice shown on the next page."""
    if message:
        url += ("&" if "?" in url else "?") + urlencode({"notice": message})
    return RedirectResponse(url, status_code=303)


# -- lists ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Paging:
    """Server-side paging and sorting of one list page, from the query string."""

    page: int
    per: int
    sort: str
    desc: bool

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per

    @classmethod
    def from_request(cls, request: Request, sorts: tuple[str, ...], default_sort: str, default_desc: bool = True,
                     per: int = 50, keyed: bool = False) -> Paging:
        """``keyed``: also accept ``metric:KEY`` and ``param:KEY`` sorts (the runs table)."""
        query = request.query_params
        try:
            number = max(1, min(int(query.get("page", 1)), 1_000_000))
        except ValueError:
            number = 1
        try:
            size = max(5, min(int(query.get("per", per)), 200))
        except ValueError:
            size = per
        sort = query.get("sort", default_sort)
        if sort not in sorts and not (keyed and sort.startswith(("metric:", "param:")) and len(sort) <= 206):
            sort = default_sort
        order = query.get("order")
        desc = default_desc if order not in ("asc", "desc") else order == "desc"
        return cls(number, size, sort, desc)

    def pages(self, total: int) -> int:
        return max(1, math.ceil(total / self.per))


def link(request: Request, **changes) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    params = dict(request.query_params)
    params.pop("notice", None)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return request.url.path + ("?" + urlencode(params) if params else "")


def sort_link(request: Request, paging: Paging, column: str) -> str:
    desc = not paging.desc if paging.sort == column else True
    return link(request, sort=column, order="desc" if desc else "asc", page=None)


# The side navigation: (key, href, label, role needed). Later areas (labeling, edge devices) add their pages with
# ``nav_item`` next to adding their router to ``PAGES`` in ``__init__.py``.
NAV: list[tuple[str, str, str, str]] = [
    ("overview", "/", "Overview", "viewer"), ("jobs", "/jobs", "Jobs", "viewer"),
    ("datasets", "/datasets", "Datasets", "viewer"), ("runs", "/runs", "Runs", "viewer"),
    ("automl", "/automl", "AutoML", "viewer"), ("models", "/models", "Models", "viewer"),
    ("evaluations", "/evaluations", "Evaluations", "viewer"), ("migrations", "/migrations", "Migrations", "viewer"),
    ("services", "/services", "Services", "viewer"), ("admin", "/admin/tokens", "Admin", "admin"),
]


def nav_item(key: str, href: str, label: str, role: str = "viewer", before: str | None = None) -> None:
    """Add a page to the side navigation (before the item ``before``, else before Admin)."""
    keys = [k for k, *_ in NAV]
    at = keys.index(before) if before in keys else keys.index("admin")
    NAV.insert(at, (key, href, label, role))


def refresh(request: Request, response: HTMLResponse) -> HTMLResponse:
    """Make htmx reload the page that polls (once a job is done), without a one-time notice in its URL."""
    current = request.headers.get("hx-current-url")
    if current:
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(current)
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "notice"])
        response.headers["HX-Redirect"] = parts.path + (f"?{query}" if query else "")
    else:
        response.headers["HX-Refresh"] = "true"
    return response


templates.env.globals.update(link=link, sort_link=sort_link, nav_items=NAV)


# -- answers to errors on console paths -----------------------------------------------------------------------------
def sign_in_redirect(request: Request, reason: str) -> RedirectResponse | HTMLResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    params = {"next": target} if request.method == "GET" and target not in ("/", "/login") else {}
    if reason:
        params["why"] = reason
    url = "/login" + ("?" + urlencode(params) if params else "")
    if request.headers.get("hx-request"):
        # htmx follows HX-Redirect with a full page load instead of swapping the sign-in page into a fragment
        return HTMLResponse("", status_code=200, headers={"HX-Redirect": url})
    response = RedirectResponse(url, status_code=303)
    if reason:
        response.delete_cookie(sessions.COOKIE, path="/")
    return response


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    try:
        viewer = current(request)
    except sessions.SignInRequired:
        viewer = None
    return render(request, "error.html", viewer, status_code=status, title=title, message=message, nav="")
