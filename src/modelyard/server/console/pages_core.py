"""Sign in and out, the overview, and the admin pages (tokens)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from modelyard.core.errors import ModelyardError, Unauthorized
from modelyard.server.console import session as sessions
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, render
from modelyard.store.tokens import ROLES, TokenStore

router = APIRouter()


def _safe_next(target: str | None) -> str:
    # only paths on this server: "//evil.example" and "https://..." would send a fresh session elsewhere
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, next: str = "/", why: str = ""):
    nonce = secrets.token_urlsafe(16)
    response = render(request, "login.html", None, title="Sign in", next=_safe_next(next), why=why[:300],
                      login_csrf=sessions.login_csrf(request.app.state.console_key, nonce))
    response.set_cookie(sessions.LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", path="/login")
    return response


@router.post("/login")
def login(request: Request, token: str = Form(""), csrf: str = Form(""), next: str = Form("/")):
    key = request.app.state.console_key
    nonce = request.cookies.get(sessions.LOGIN_COOKIE, "")
    if not nonce:
        return _login_again(request, next, "Your browser did not send the sign-in form's cookie; reload and retry.")
    try:
        sessions.check_csrf(sessions.login_csrf(key, nonce), csrf)
    except sessions.CsrfRefused:
        return _login_again(request, next, "The sign-in form was stale; try again.")
    try:
        info = TokenStore(request.app.state.workspace.engine).authenticate(token.strip())
    except Unauthorized as exc:
        return _login_again(request, next, f"Sign-in refused: {exc.message}.", status=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(sessions.COOKIE, sessions.issue(key, info.id), max_age=sessions.SESSION_S, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/login")
    return response


def _login_again(request: Request, next: str, error: str, status: int = 400):
    nonce = secrets.token_urlsafe(16)
    response = render(request, "login.html", None, status_code=status, title="Sign in", next=_safe_next(next),
                      error=error, login_csrf=sessions.login_csrf(request.app.state.console_key, nonce))
    response.set_cookie(sessions.LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", path="/login")
    return response


@router.post("/logout")
def logout(_: Viewer = Depends(action("viewer"))):
    response = RedirectResponse("/login?why=Signed+out.", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@router.get("/")
def overview_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.server.overview import overview

    data = overview(request)
    return render(request, "overview.html", viewer, title="Overview", counts=data["counts"],
                  job_counts=data["jobs_by_status"], recent=data["recent_jobs"], services=data["services"],
                  attention=data["attention"])


@router.get("/admin/tokens")
def tokens_page(request: Request, viewer: Viewer = Depends(page("admin"))):
    paging = Paging.from_request(request, ("created",), "created", default_desc=False, per=100)
    items = TokenStore(request.app.state.workspace.engine).list()
    shown = request.query_params.get("show", "active")
    if shown == "active":
        items = [t for t in items if t.active]
    return render(request, "admin_tokens.html", viewer, title="Tokens", nav="admin", roles=ROLES, shown=shown,
                  tokens=items[paging.offset:paging.offset + paging.per], total=len(items), paging=paging)


@router.post("/admin/tokens")
def create_token(request: Request, name: str = Form(...), role: str = Form(...),
                 viewer: Viewer = Depends(action("admin"))):
    try:
        info, secret = TokenStore(request.app.state.workspace.engine).create(name, role, viewer.name)
    except ModelyardError as exc:
        return render(request, "admin_tokens.html", viewer, status_code=exc.status, title="Tokens", nav="admin",
                      roles=ROLES, shown="active", error=exc.message, total=0, tokens=[],
                      paging=Paging(1, 100, "created", False))
    # the secret is shown on this answer only (like the API's creation response), never stored or shown again
    return render(request, "admin_token_created.html", viewer, status_code=201, title="Token created", nav="admin",
                  info=info, secret=secret)


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str, viewer: Viewer = Depends(action("admin"))):
    info = TokenStore(request.app.state.workspace.engine).revoke(token_id)
    return redirect("/admin/tokens", f"Revoked token {info.name} ({info.prefix}…).")
