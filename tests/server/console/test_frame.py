"""The console's frame: sign in/out, the session cookie, CSRF, roles, security headers, escaping, errors as pages."""

from __future__ import annotations

import os
import stat

from console_support import csrf_of, sign_in
from fastapi.testclient import TestClient

from modelyard.server.console import session as sessions

XSS = "<img src=x onerror=alert(1)>"


def test_pages_need_a_session_and_the_api_still_takes_bearer_tokens(console_app, as_role):
    anonymous = TestClient(console_app)
    answer = anonymous.get("/jobs?status=failed", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=%2Fjobs")
    admin = as_role("admin")
    assert admin.get("/api/v1/jobs", headers={"Authorization": f"Bearer {admin.secret}"}).status_code == 200
    assert anonymous.get("/api/v1/jobs").json()["error"]["code"] == "unauthorized"


def test_session_cookie_is_signed_httponly_strict_and_holds_no_secret(console_app, sqlite_workspace, as_role):
    from modelyard.store.tokens import TokenStore

    _, secret = TokenStore(sqlite_workspace.engine).create("u", "viewer")
    client = TestClient(console_app)
    page = client.get("/login")
    answer = client.post("/login", data={"token": secret, "csrf": csrf_of(page.text)}, follow_redirects=False)
    cookie = [v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith(sessions.COOKIE)][0]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
    assert secret not in cookie
    key_file = sqlite_workspace.home / sessions.SECRET_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert client.get("/").status_code == 200


def test_wrong_token_and_login_without_csrf_are_refused_with_a_message(console_app):
    client = TestClient(console_app)
    page = client.get("/login")
    wrong = client.post("/login", data={"token": "myd_nope", "csrf": csrf_of(page.text)})
    assert wrong.status_code == 401 and "Sign-in refused: invalid token" in wrong.text
    stale = client.post("/login", data={"token": "myd_nope", "csrf": "forged"})
    assert stale.status_code == 400 and "stale" in stale.text


def test_forged_expired_and_revoked_sessions_get_the_sign_in_page(console_app, sqlite_workspace, as_role):
    from modelyard.store.tokens import TokenStore

    viewer = as_role("viewer")
    good = viewer.cookies.get(sessions.COOKIE)
    payload, _, mac = good.partition(".")
    for forged in (payload + ".AAAA" + mac[4:], "garbage", payload[:-2] + "." + mac):
        client = TestClient(console_app, cookies={sessions.COOKIE: forged})
        answer = client.get("/", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?why=")
    key = console_app.state.console_key
    expired = sessions.issue(key, viewer.token_id, lifetime_s=-10)
    answer = TestClient(console_app, cookies={sessions.COOKIE: expired}).get("/", follow_redirects=True)
    assert "your session has expired" in answer.text and "Traceback" not in answer.text
    TokenStore(sqlite_workspace.engine).revoke(viewer.token_id)
    answer = viewer.get("/runs", follow_redirects=True)
    assert answer.url.path == "/login" and "has been revoked" in answer.text


def test_state_changing_forms_need_the_sessions_csrf_token(as_role, sqlite_workspace):
    admin = as_role("admin")
    assert admin.post("/admin/tokens", data={"name": "x", "role": "viewer"}).status_code == 403
    missing = admin.post("/admin/tokens", data={"name": "x", "role": "viewer", "csrf": "forged"})
    assert missing.status_code == 403 and "Form expired" in missing.text
    other = as_role("admin")  # another session's token is no good either
    foreign = admin.post("/admin/tokens", data={"name": "x", "role": "viewer",
                                                "csrf": csrf_of(other.get("/admin/tokens").text)})
    assert foreign.status_code == 403
    from modelyard.store.tokens import TokenStore

    assert [t.name for t in TokenStore(sqlite_workspace.engine).list()] == ["admin-user", "admin-user"]
    made = admin.post("/admin/tokens", data={"name": "ci", "role": "viewer", "csrf": csrf_of(admin.get("/").text)})
    assert made.status_code == 201 and "myd_" in made.text
    header = admin.post("/admin/tokens", data={"name": "ci2", "role": "editor"},
                        headers={"X-CSRF-Token": csrf_of(admin.get("/").text)})
    assert header.status_code == 201


def test_a_viewer_sees_no_write_buttons_and_the_server_refuses_the_write(as_role, sqlite_workspace):
    from modelyard.jobs.queue import JobQueue

    job = JobQueue(sqlite_workspace).submit("system.sleep", {"seconds": 60})
    viewer = as_role("viewer")
    page = viewer.get(f"/jobs/{job.id}")
    assert page.status_code == 200 and "Cancel job" not in page.text
    refused = viewer.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 403 and "needs the editor role" in refused.text
    assert JobQueue(sqlite_workspace).get(job.id).status == "queued"
    assert viewer.get("/admin/tokens").status_code == 403
    editor = as_role("editor")
    page = editor.get(f"/jobs/{job.id}")
    assert "Cancel job" in page.text
    done = editor.post(f"/jobs/{job.id}/cancel", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert done.status_code == 303 and JobQueue(sqlite_workspace).get(job.id).status == "cancelled"


def test_security_headers_and_no_inline_script(as_role):
    admin = as_role("admin")
    for path in ("/", "/jobs", "/runs", "/admin/tokens", "/login"):
        answer = admin.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert "<script>" not in answer.text and "onclick" not in answer.text.lower()
    assert "content-security-policy" not in admin.get("/docs").headers  # Swagger UI keeps its own page


def test_user_strings_render_as_text(as_role, sqlite_workspace):
    from modelyard.jobs.queue import JobQueue
    from modelyard.train.tracking import RunStore

    JobQueue(sqlite_workspace).submit("system.sleep", {"seconds": 1}, owner=XSS)
    run = RunStore(sqlite_workspace).create(XSS, experiment=XSS, params={XSS: XSS})
    admin = as_role("admin")
    for path in ("/jobs", "/runs", f"/runs/{run.id}", f"/runs?q={XSS}", f"/login?why={XSS}"):
        text = admin.get(path).text
        assert XSS not in text, path
    assert "&lt;img src=x onerror=alert(1)&gt;" in admin.get(f"/runs/{run.id}").text


def test_errors_on_console_paths_are_pages_and_api_errors_stay_json(as_role):
    admin = as_role("admin")
    missing = admin.get("/jobs/job_missing")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "job job_missing not found" in missing.text
    assert admin.get("/no-such-page").status_code == 404
    api = admin.get("/api/v1/jobs/job_missing", headers={"Authorization": f"Bearer {admin.secret}"})
    assert api.json()["error"]["code"] == "not_found"


def test_sign_out_ends_the_session(as_role):
    viewer = as_role("viewer")
    page = viewer.get("/")
    answer = viewer.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    assert viewer.get("/", follow_redirects=False).status_code == 303


def test_next_only_goes_to_paths_on_this_server(console_app, sqlite_workspace):
    from modelyard.store.tokens import TokenStore

    _, secret = TokenStore(sqlite_workspace.engine).create("u", "viewer")
    client = TestClient(console_app)
    page = client.get("/login")
    answer = client.post("/login", data={"token": secret, "csrf": csrf_of(page.text), "next": "//evil.example/x"},
                         follow_redirects=False)
    assert answer.headers["location"] == "/"
    assert sign_in(TestClient(console_app), secret)


def test_live_fragments_poll_until_the_job_is_done_then_reload_the_page_once(as_role, sqlite_workspace):
    import sqlalchemy as sa

    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    job = JobQueue(sqlite_workspace).submit("system.sleep", {"seconds": 1})
    viewer = as_role("viewer")
    running = viewer.get(f"/jobs/{job.id}/live", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 1s"' in running.text and "HX-Redirect" not in running.headers
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(status="succeeded", progress=1.0))
    done = viewer.get(f"/jobs/{job.id}/live", headers={
        "HX-Request": "true", "HX-Current-URL": f"http://testserver/jobs/{job.id}?notice=Queued&tab=log"})
    assert "every 1s" not in done.text and done.headers["HX-Redirect"] == f"/jobs/{job.id}?tab=log"


def test_the_navigation_shows_admin_only_to_admins(as_role):
    assert 'href="/admin/tokens"' not in as_role("editor").get("/").text
    assert 'href="/admin/tokens"' in as_role("admin").get("/").text


def test_overview_lists_what_needs_attention_and_has_a_json_twin(as_role, sqlite_workspace):
    import sqlalchemy as sa

    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    job = JobQueue(sqlite_workspace).submit("system.sleep", {"seconds": 1})
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(status="failed", error="Traceback\nBoom: <b>"))
    viewer = as_role("viewer")
    page = viewer.get("/")
    assert f"job {job.id} (system.sleep) failed" in page.text and "Boom: &lt;b&gt;" in page.text
    twin = viewer.get("/api/v1/overview", headers={"Authorization": f"Bearer {viewer.secret}"}).json()
    assert twin["schema"] == "modelyard.overview/1" and twin["jobs_by_status"]["failed"] == 1
    assert twin["attention"][0]["detail"] == "Boom: <b>" and twin["recent_jobs"][0]["id"] == job.id


def test_unknown_sorts_and_bad_paging_fall_back_to_the_defaults(as_role):
    viewer = as_role("viewer")
    for path in ("/jobs?sort=metric:x&page=abc&per=-5", "/models?sort=evil&order=sideways", "/runs?per=100000"):
        assert viewer.get(path).status_code == 200, path
