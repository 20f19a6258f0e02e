"""The REST API in-process (Starlette's TestClient), with real tokens: every bad-input bullet of the foundation."""

import pytest
from starlette.testclient import TestClient

from modelyard.core.settings import Settings
from modelyard.server.app import create_app
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace


@pytest.fixture
def api(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home", max_body_bytes=4096))
    tokens = TokenStore(workspace.engine)
    secrets = {role: tokens.create(role, role)[1] for role in ("viewer", "editor", "admin")}
    with TestClient(create_app(workspace), raise_server_exceptions=False) as client:
        client.secrets = secrets
        client.workspace = workspace
        yield client
    workspace.close()


def auth(api, role):
    return {"Authorization": f"Bearer {api.secrets[role]}"}


def assert_error(response, status, code=None, contains=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    if code:
        assert body["error"]["code"] == code
    if contains:
        assert contains in body["error"]["message"]


def test_health_needs_no_token_everything_else_does(api):
    assert api.get("/healthz").json()["status"] == "ok" and api.get("/readyz").json()["status"] == "ready"
    for method, path in [("GET", "/api/v1/jobs"), ("GET", "/api/v1/version"), ("POST", "/api/v1/jobs"),
                         ("GET", "/api/v1/tokens"), ("GET", "/api/v1/job-kinds"), ("GET", "/api/v1/jobs/x/logs")]:
        response = api.request(method, path)
        assert_error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_invalid_and_revoked_tokens_are_401(api):
    assert_error(api.get("/api/v1/jobs", headers={"Authorization": "Bearer myd_nope"}), 401, contains="invalid")
    assert_error(api.get("/api/v1/jobs", headers={"Authorization": "Basic abc"}), 401)
    token = api.post("/api/v1/tokens", json={"name": "temp", "role": "viewer"}, headers=auth(api, "admin")).json()
    assert api.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token['token']}"}).status_code == 200
    api.delete(f"/api/v1/tokens/{token['id']}", headers=auth(api, "admin")).raise_for_status()
    assert_error(api.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token['token']}"}), 401,
                 contains="revoked")


def test_roles(api):
    submit = {"kind": "system.sleep", "spec": {"seconds": 0}}
    assert_error(api.post("/api/v1/jobs", json=submit, headers=auth(api, "viewer")), 403, "forbidden")
    assert api.post("/api/v1/jobs", json=submit, headers=auth(api, "editor")).status_code == 201
    assert_error(api.get("/api/v1/tokens", headers=auth(api, "editor")), 403)
    assert_error(api.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=auth(api, "editor")), 403)
    assert api.get("/api/v1/tokens", headers=auth(api, "admin")).status_code == 200
    version = api.get("/api/v1/version", headers=auth(api, "viewer")).json()
    assert version["schema"] == "modelyard.version/1" and version["you"]["role"] == "viewer"


def test_job_lifecycle_over_the_api(api):
    job = api.post("/api/v1/jobs", json={"kind": "system.sleep", "spec": {"seconds": 1}},
                   headers=auth(api, "editor")).json()
    assert job["schema"] == "modelyard.job/1" and job["status"] == "queued" and job["owner"] == "editor"
    got = api.get(f"/api/v1/jobs/{job['id']}", headers=auth(api, "viewer")).json()
    assert got["id"] == job["id"]
    page = api.get("/api/v1/jobs", params={"status": "queued", "limit": 1}, headers=auth(api, "viewer")).json()
    assert page["schema"] == "modelyard.job-list/1" and [j["id"] for j in page["items"]] == [job["id"]]
    logs = api.get(f"/api/v1/jobs/{job['id']}/logs", headers=auth(api, "viewer"))
    assert logs.status_code == 200 and logs.headers["x-log-offset"] == "0" and logs.headers["x-job-status"] == "queued"
    cancelled = api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(api, "editor")).json()
    assert cancelled["status"] == "cancelled"
    assert_error(api.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(api, "editor")), 409, "conflict")
    follow = api.get(f"/api/v1/jobs/{job['id']}/logs", params={"follow": True}, headers=auth(api, "viewer"))
    assert follow.status_code == 200, "follow on a finished job ends at once"


def test_unknown_ids_are_404(api):
    h = auth(api, "admin")
    assert_error(api.get("/api/v1/jobs/job_nope", headers=h), 404, "not_found", "job_nope")
    assert_error(api.get("/api/v1/jobs/job_nope/logs", headers=h), 404)
    assert_error(api.post("/api/v1/jobs/job_nope/cancel", headers=h), 404)
    assert_error(api.delete("/api/v1/tokens/tok_nope", headers=h), 404)
    assert_error(api.get("/api/v1/blobs/" + "0" * 64, headers=h), 404)
    assert_error(api.get("/api/v1/no-such-route", headers=h), 404)


def test_malformed_specs_are_422_naming_the_field(api):
    h = auth(api, "editor")
    assert_error(api.post("/api/v1/jobs", json={"kind": "system.sleep", "spec": {"seconds": "x"}}, headers=h),
                 422, contains="spec.seconds")
    assert_error(api.post("/api/v1/jobs", json={"spec": {}}, headers=h), 422, "invalid_input", "body field 'kind'")
    assert_error(api.post("/api/v1/jobs", json={"kind": "system.sleep", "spec": [1]}, headers=h), 422,
                 contains="body field 'spec'")
    assert_error(api.post("/api/v1/jobs", content=b"{not json", headers={**h, "Content-Type": "application/json"}),
                 422)
    response = api.post("/api/v1/jobs", json={"kind": "train.everything"}, headers=h)
    assert_error(response, 422, "unknown_job_kind", "known kinds: ")
    assert "blob.verify" in response.json()["error"]["message"]
    assert_error(api.get("/api/v1/jobs", params={"limit": 0}, headers=h), 422, contains="query field 'limit'")
    assert_error(api.get("/api/v1/jobs", params={"status": "done"}, headers=h), 422, contains="status")
    assert_error(api.post("/api/v1/tokens", json={"name": "x", "role": "god"}, headers=auth(api, "admin")), 422)


def test_body_over_the_limit_is_413(api):
    h = auth(api, "editor")
    big = {"kind": "system.sleep", "spec": {"seconds": 0, "padding": "x" * 10_000}}
    assert_error(api.post("/api/v1/jobs", json=big, headers=h), 413, "payload_too_large", "4096")

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(10):
            yield b"y" * 1000

    assert_error(api.post("/api/v1/blobs", content=chunks(), headers=h), 413)
    assert list(api.workspace.blobs.iter_digests()) == []


def test_blobs_round_trip_and_tamper_detection(api):
    h = auth(api, "editor")
    stored = api.post("/api/v1/blobs", content=b"model weights", headers=h).json()
    assert stored["digest"].startswith("sha256:") and stored["size"] == 13
    assert api.get(f"/api/v1/blobs/{stored['digest']}", headers=h).content == b"model weights"
    path = api.workspace.blobs.path_for(stored["digest"])
    path.chmod(0o644)
    path.write_bytes(b"model weighTs")
    assert_error(api.get(f"/api/v1/blobs/{stored['digest']}", headers=h), 500, "integrity_error", "corrupt")


def test_token_secret_is_shown_once(api):
    created = api.post("/api/v1/tokens", json={"name": "ci", "role": "editor"}, headers=auth(api, "admin")).json()
    assert created["token"].startswith("myd_")
    listing = api.get("/api/v1/tokens", headers=auth(api, "admin")).text
    assert created["token"] not in listing and created["id"] in listing


def test_job_kinds_are_listed_with_schemas(api):
    kinds = {k["name"]: k for k in api.get("/api/v1/job-kinds", headers=auth(api, "viewer")).json()["items"]}
    assert kinds["blob.verify"]["idempotent"] is True
    assert "seconds" in kinds["system.sleep"]["spec_schema"]["properties"]


def test_openapi_and_offline_docs(api):
    spec = api.get("/openapi.json").json()
    assert "/api/v1/jobs" in spec["paths"] and "/api/v1/tokens" in spec["paths"]
    page = api.get("/docs").text
    assert "cdn" not in page.lower() and "/static/swagger/swagger-ui-bundle.js" in page
    asset = api.get("/static/swagger/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert api.get("/static/swagger/swagger-ui.css").status_code == 200


def test_chunked_json_body_over_the_limit_is_413_too(api):
    def chunks():
        yield b'{"kind": "system.sleep", "spec": {"padding": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    response = api.post("/api/v1/jobs", content=chunks(),
                        headers={**auth(api, "editor"), "Content-Type": "application/json"})
    assert_error(response, 413, "payload_too_large")


def test_a_non_finite_result_does_not_break_the_listing(api):
    from modelyard.jobs.queue import JobQueue
    from modelyard.jobs.runner import json_safe

    queue = JobQueue(api.workspace)
    job = queue.submit("system.sleep", {})
    queue.claim("w", 1)
    import numpy as np

    queue.finish(job.id, "succeeded", result=json_safe({"loss": float("nan"), "n": np.int64(3),
                                                        "v": np.array([1.5, np.inf])}))
    listed = api.get("/api/v1/jobs", headers=auth(api, "viewer"))
    assert listed.status_code == 200
    assert listed.json()["items"][0]["result"] == {"loss": None, "n": 3, "v": [1.5, None]}


def test_service_names_cannot_be_probed_without_a_token(api):
    assert_error(api.post("/api/v1/services/secret-model/predict", json={"inputs": {}}), 401)
    assert_error(api.post("/api/v1/services/secret-model/predict", json={"inputs": {}}, headers=auth(api, "viewer")),
                 404)


def test_json_nested_too_deep_is_400_everywhere(api):
    """depth 1,000 used to end in RecursionError and a 500 (issue 21 item 9)."""
    deep = "[" * 1000 + "]" * 1000
    for path, body in (("/api/v1/jobs", f'{{"kind": "system.sleep", "spec": {{"x": {deep}}}}}'),
                       ("/api/v1/runs", f'{{"name": "r", "params": {{"p": {deep}}}}}')):
        response = api.post(path, content=body.encode(),
                            headers={**auth(api, "editor"), "Content-Type": "application/json"})
        assert_error(response, 400, "bad_request", "nested deeper than 64 levels")
    assert api.get("/api/v1/runs", headers=auth(api, "viewer")).json()["items"] == []


def test_nan_literals_are_422_and_a_job_spec_stores_only_finite_numbers(api):
    response = api.post("/api/v1/jobs", content=b'{"kind": "system.sleep", "spec": {"seconds": NaN}}',
                        headers={**auth(api, "editor"), "Content-Type": "application/json"})
    assert_error(response, 422, "invalid_input", "NaN is not JSON")
    untyped = api.post("/api/v1/jobs", content=b'{"kind": "system.sleep", "spec": {"seconds": Infinity}}',
                       headers=auth(api, "editor"))  # no Content-Type: FastAPI reads it as JSON all the same
    assert_error(untyped, 422, "invalid_input", "Infinity is not JSON")
    assert api.get("/api/v1/jobs", headers=auth(api, "viewer")).json()["items"] == []
    ok = api.post("/api/v1/jobs", content=b'{"kind": "system.sleep", "spec": {"seconds": 0.5}}',
                  headers={**auth(api, "editor"), "Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text


def test_jobs_naming_unknown_models_or_datasets_are_404_at_submit_and_leave_no_job(api):
    """evaluate, batch.predict and automl.train look their models and datasets up before a job row exists."""
    for kind, spec, message in [
        ("evaluate", {"model": "ghost@1", "data": "penguins@1"}, "model 'ghost' not found"),
        ("batch.predict", {"model": "ghost@2", "dataset": "penguins@1"}, "model 'ghost' not found"),
        ("automl.train", {"dataset": "ghost@1", "name": "m"}, "dataset 'ghost' not found"),
    ]:
        response = api.post("/api/v1/jobs", json={"kind": kind, "spec": spec}, headers=auth(api, "editor"))
        assert_error(response, 404, "not_found", message)
    assert_error(api.post("/api/v1/jobs", json={"kind": "automl.train", "spec": {"dataset": "d@1", "name": "bad name"}},
                          headers=auth(api, "editor")), 422, contains="model name 'bad name'")
    assert api.get("/api/v1/jobs", headers=auth(api, "viewer")).json()["items"] == []
def test_openapi_declares_auth_bodies_and_errors(api):
    document = api.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": document["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            success = [code for code in responses if code.startswith("2")]
            assert success and all(responses[c].get("content") for c in success), (method, path)
            for code in responses:
                if code.startswith(("4", "5")) and path not in ("/healthz", "/readyz"):
                    assert responses[code]["content"]["application/json"]["schema"] == error_ref, (method, path, code)
            if path.startswith("/api/v1/"):
                assert {"bearerAuth": []} in operation["security"], (method, path)
                assert {"401", "403"} <= set(responses), (method, path)
            else:
                assert "security" not in operation, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    job = document["components"]["schemas"]["Job"]
    assert job["additionalProperties"] is False and "schema" in job["required"]


def test_errors_do_not_name_server_paths(api):
    import shutil

    blobs = api.workspace.blobs.root
    shutil.rmtree(blobs / "tmp", ignore_errors=True)
    (blobs / "tmp").write_text("a file where the staging folder belongs")
    response = api.post("/api/v1/blobs", content=b"x", headers=auth(api, "editor"))
    assert_error(response, 500, "workspace_error", contains="cannot write to blob store <workspace>/blobs")
    assert str(api.workspace.home) not in response.text


def test_server_paths_hidden_keeps_the_file_name():
    import tempfile
    from pathlib import Path

    from modelyard.server.app import server_paths_hidden

    scratch = tempfile.gettempdir()
    home = Path(scratch) / "pytest-1" / "home"
    assert server_paths_hidden(f"database {home}/modelyard.db is corrupt", home) == (
        "database <workspace>/modelyard.db is corrupt")
    assert server_paths_hidden(f"{scratch}/modelyard-upload-x1/data.csv: empty", Path("/srv/w")) == "data.csv: empty"
    assert server_paths_hidden(f"cannot write {scratch}", Path("/srv/w")) == "cannot write <tmp>"
