"""Services pages (without starting replicas: a stopped service): status, revisions, traffic editor, access-log
charts, and the writes' roles. Deploying and trying a live service is covered by the browser flow."""

from __future__ import annotations

import json

import pytest
from console_support import csrf_of, register_linear


@pytest.fixture
def stopped_service(sqlite_workspace, tmp_path, monkeypatch):
    from modelyard.deploy import supervisor
    from modelyard.deploy.services import DeploySpec, ServiceStore
    from modelyard.deploy.state import service_dir

    # a traffic change starts the service's supervisor daemon, as its REST twin does; these page tests check the
    # desired state only, so no daemon is started (one racing its own start-up would outlive the test)
    monkeypatch.setattr(supervisor, "ensure_running", lambda *args, **kwargs: True)
    register_linear(sqlite_workspace, tmp_path, "mm")
    register_linear(sqlite_workspace, tmp_path, "mm")
    store = ServiceStore(sqlite_workspace)
    store.deploy(DeploySpec(model="mm@1", name="svc"))
    store.mark_live("svc", 1)
    store.stop("svc")
    folder = service_dir(sqlite_workspace.home, "svc")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "access.log", "w") as log:
        for i in range(200):
            log.write(json.dumps({"ts": 1000 + i * 0.5, "status": 500 if i % 50 == 0 else 200, "ms": 2 + i % 7,
                                  "model": "mm@1", "rows": 1 + i % 4}) + "\n")
        log.write('{"ts": 1100, "status": 2')  # a line cut by a crash
    return store


def test_service_page_shows_status_revisions_and_traffic_charts(as_role, stopped_service):
    viewer = as_role("viewer")
    page = viewer.get("/services/svc")
    assert page.status_code == 200 and "stopped" in page.text and page.text.count("<svg") == 3
    assert "200 requests" in page.text and "Traffic split" not in page.text and ">Stop<" not in page.text
    listing = viewer.get("/services")
    assert ">svc</a>" in listing.text and "mm@1 <b>100%</b>" in listing.text
    stats = viewer.get("/api/v1/services/svc/stats?buckets=10", headers={"Authorization": f"Bearer {viewer.secret}"})
    body = stats.json()
    assert body["requests"] == 200 and sum(s["errors"] for s in body["series"]) == 4
    assert sum(s["requests"] for s in body["series"]) == 200


def test_traffic_editor_makes_a_new_revision_and_rollback_restores(as_role, stopped_service):
    editor = as_role("editor")
    page = editor.get("/services/svc")
    assert "Traffic split" in page.text
    token = csrf_of(page.text)
    bad = editor.post("/services/svc/traffic", data={"csrf": token, "ref": ["mm@1", "mm@2"], "weight": ["90", "20"]})
    assert bad.status_code in (400, 422) and stopped_service.get("svc").revision == 1
    answer = editor.post("/services/svc/traffic", data={"csrf": token, "ref": ["mm@1", "mm@2"],
                                                        "weight": ["90", "10"]}, follow_redirects=False)
    assert answer.status_code == 303
    desired = stopped_service.get("svc").desired
    assert {t["ref"]: t["weight"] for t in desired.traffic} == {"mm@1": 90, "mm@2": 10}
    viewer = as_role("viewer")
    refused = viewer.post("/services/svc/traffic", data={"csrf": csrf_of(viewer.get("/").text),
                                                         "ref": "mm@2", "weight": "100"})
    assert refused.status_code == 403 and stopped_service.get("svc").revision == 2


def test_try_it_on_a_stopped_service_says_so(as_role, stopped_service):
    editor = as_role("editor")
    answer = editor.post("/services/svc/try", data={"csrf": csrf_of(editor.get("/").text),
                                                    "body": '{"inputs": [[1, 2]]}'}, headers={"HX-Request": "true"})
    assert answer.status_code == 200 and "HTTP 503" in answer.text and "start it first" in answer.text
