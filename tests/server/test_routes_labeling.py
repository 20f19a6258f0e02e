"""The labeling REST API and the Label Studio ML backend, in-process, with real tokens of each role."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from starlette.testclient import TestClient

from labelfixtures import colour_folder, colour_png, register_colour_classifier

JOBS = "/api/v1/labeling/jobs"
CHOICES = ('<View><Image name="img" value="$image"/><Choices name="colour" toName="img">'
           '<Choice value="red"/><Choice value="green"/><Choice value="blue"/></Choices></View>')
BOXES = ('<View><Image name="img" value="$image"/><RectangleLabels name="box" toName="img">'
         '<Label value="red"/></RectangleLabels></View>')


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An app over a workspace with dataset ``colours@1``, the ``colours`` classifier, and tokens: admin ``boss``,
    editors ``alice``, ``bob`` and ``rita``, viewer ``val``."""
    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.server.app import close_app, create_app
    from modelyard.store.tokens import TokenStore
    from modelyard.store.workspace import Workspace

    folder = tmp_path_factory.mktemp("labeling-api")
    workspace = Workspace.open(Settings.load(folder / "home"))
    DatasetStore(workspace).import_path(colour_folder(folder / "colours", per_class=3), "colours")
    register_colour_classifier(workspace, folder)
    tokens = TokenStore(workspace.engine)
    headers = {}
    for name, role in (("boss", "admin"), ("alice", "editor"), ("bob", "editor"), ("rita", "editor"),
                       ("val", "viewer")):
        headers[name] = {"Authorization": f"Bearer {tokens.create(name, role)[1]}"}
    app = create_app(workspace)
    with TestClient(app) as http:
        yield http, headers, workspace
    close_app(app)
    workspace.close()


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return body["error"]["message"]


def test_a_team_labels_reviews_and_publishes_over_rest(api):
    http, who, workspace = api
    created = http.post(JOBS, json={"name": "r1", "task": "classification", "dataset": "colours@1"},
                        headers=who["alice"])
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["schema"] == "modelyard.labeling-job/1" and job["owner"] == "alice" and job["counts"]["unlabeled"] == 9
    assert http.get(JOBS, headers=who["val"]).json()["items"][0]["name"] == "r1"
    _error(http.post(JOBS, json={"name": "r1", "task": "classification", "dataset": "colours@1"},
                     headers=who["val"]), 403, "forbidden")
    assert http.put(f"{JOBS}/r1/members/bob", json={"role": "labeler"}, headers=who["alice"]).status_code == 200
    assert http.put(f"{JOBS}/r1/members/rita", json={"role": "reviewer"}, headers=who["alice"]).status_code == 200
    _error(http.put(f"{JOBS}/r1/members/val", json={"role": "reviewer"}, headers=who["bob"]), 403, "forbidden")
    assigned = http.post(f"{JOBS}/r1/assign", json={"labelers": ["bob"], "count": 4}, headers=who["alice"]).json()
    assert assigned == {"schema": "modelyard.labeling-assignment/1", "assigned": {"bob": 4}, "total": 4}
    page = http.get(f"{JOBS}/r1/items", params={"assignee": "bob", "limit": 10}, headers=who["val"]).json()
    assert page["schema"] == "modelyard.labeling-items/1" and page["total"] == 4
    items = [i["item"] for i in page["items"]]
    for item in items:
        saved = http.post(f"{JOBS}/r1/annotations", json={"item": item, "labels": [item.split("/")[0]],
                                                          "seconds": 6}, headers=who["bob"])
        assert saved.status_code == 200 and saved.json()["state"] == "labeled", saved.text
    message = _error(http.post(f"{JOBS}/r1/annotations", json={"item": items[0], "labels": ["mauve"]},
                               headers=who["bob"]), 422, "invalid_input")
    assert items[0] in message and "mauve" in message
    _error(http.post(f"{JOBS}/r1/annotations", json={"item": "no/such.png", "labels": ["red"]},
                     headers=who["bob"]), 404, "not_found")
    _error(http.post(f"{JOBS}/r1/annotations", json={"item": items[0], "labels": ["red"]},
                     headers=who["rita"]), 403, "forbidden")
    sample = http.post(f"{JOBS}/r1/review-sample", json={"labeler": "bob", "fraction": 0.5},
                       headers=who["rita"]).json()
    assert len(sample["items"]) == 2 and {i["state"] for i in sample["items"]} == {"in_review"}
    _error(http.post(f"{JOBS}/r1/annotations", json={"item": sample["items"][0]["item"], "labels": ["red"]},
                     headers=who["bob"]), 409, "conflict")
    passed = http.post(f"{JOBS}/r1/reviews", json={"item": sample["items"][0]["item"], "outcome": "pass",
                                                   "rating": "A"}, headers=who["rita"]).json()
    assert passed["schema"] == "modelyard.labeling-item/1" and passed["state"] == "accepted"
    rejected = http.post(f"{JOBS}/r1/reviews", json={"item": sample["items"][1]["item"], "outcome": "reject",
                                                     "rating": "C", "comment": "blurry"}, headers=who["rita"]).json()
    assert rejected["state"] == "rejected" and rejected["assignee"] == "bob"
    _error(http.post(f"{JOBS}/r1/reviews", json={"item": items[2], "outcome": "pass", "rating": "F"},
                     headers=who["rita"]), 422, "invalid_input")
    stats = http.get(f"{JOBS}/r1/stats", headers=who["val"]).json()
    bob = next(p for p in stats["labelers"] if p["principal"] == "bob")
    assert bob["accuracy"] == 0.5 and bob["items_per_hour"] == 600.0 and bob["role"] == "labeler"
    one = http.get(f"{JOBS}/r1/item", params={"id": items[0]}, headers=who["val"]).json()
    assert one["item"] == items[0] and one["labeled_by"] == "bob"
    _error(http.post(f"{JOBS}/r1/publish", json={}, headers=who["bob"]), 403, "forbidden")
    published = http.post(f"{JOBS}/r1/publish", json={"mode": "overwrite", "accepted_only": True},
                          headers=who["alice"])
    assert published.status_code == 201, published.text
    version = published.json()
    assert version["ref"] == "colours@2" and version["lineage"]["step"]["job"] == "r1"
    assert http.get(f"{JOBS}/r1", headers=who["val"]).json()["published"][0]["ref"] == "colours@2"


def test_publishing_nothing_and_unknown_jobs_are_clear_errors(api):
    http, who, _ = api
    http.post(JOBS, json={"name": "r2", "task": "multilabel", "classes": ["warm", "cold"], "dataset": "colours@1"},
              headers=who["alice"])
    assert "nothing labeled" in _error(http.post(f"{JOBS}/r2/publish", json={}, headers=who["alice"]), 409,
                                       "conflict")
    _error(http.get(f"{JOBS}/nope", headers=who["val"]), 404, "not_found")
    _error(http.get(f"{JOBS}/r2/items", params={"sort": "sideways"}, headers=who["val"]), 422, "invalid_input")
    _error(http.get(f"{JOBS}/r2", headers={}), 401, "unauthorized")
    _error(http.post(JOBS, json={"name": "r3", "task": "detection", "classes": ["car"], "dataset": "colours@1",
                                 "files": {"a.png": "sha256:" + "0" * 64}}, headers=who["alice"]), 422, "invalid_input")


def test_uploaded_images_proposals_and_priorities_over_rest(api):
    from modelyard.core.jobkind import LocalJobContext
    from modelyard.deploy.prelabel import PROPOSE

    http, who, workspace = api
    files = {f"{c}.png": "sha256:" + workspace.blobs.put_bytes(colour_png(c)).digest for c in ("red", "blue")}
    created = http.post(JOBS, json={"name": "r4", "task": "classification", "classes": ["red", "green", "blue"],
                                    "files": files}, headers=who["alice"])
    assert created.status_code == 201, created.text
    more = http.post(f"{JOBS}/r4/items", json={"files": {"red.png": files["red.png"]}}, headers=who["alice"])
    assert "already in job" in _error(more, 409, "conflict")
    queued = http.post(f"{JOBS}/r4/proposals", json={"model": "colours"}, headers=who["alice"])
    assert queued.status_code == 201 and queued.json()["kind"] == "label.propose", queued.text
    _error(http.post(f"{JOBS}/r4/proposals", json={"model": "colours"}, headers=who["bob"]), 403, "forbidden")
    _error(http.post(f"{JOBS}/r4/proposals", json={"model": "missing"}, headers=who["alice"]), 404, "not_found")
    PROPOSE.run(PROPOSE.validate_spec(queued.json()["spec"]), LocalJobContext(home=workspace.home))
    proposed = http.get(f"{JOBS}/r4/items", params={"state": "proposed", "sort": "-score"}, headers=who["val"]).json()
    assert [i["proposal"]["labels"] for i in proposed["items"]] in ([["red"], ["blue"]], [["blue"], ["red"]])
    accepted = http.post(f"{JOBS}/r4/annotations", json={"item": "red.png", "accept_proposal": True, "seconds": 1},
                         headers=who["alice"]).json()
    assert accepted["source"] == "proposal_accepted" and accepted["annotation"]["labels"] == ["red"]
    updated = http.post(f"{JOBS}/r4/priorities", json={"items": {"blue.png": {"uncertainty": 0.9, "hard": True}}},
                        headers=who["alice"]).json()
    assert updated["updated"] == 1
    hard = http.get(f"{JOBS}/r4/items", params={"hard": "true"}, headers=who["val"]).json()["items"]
    assert [i["item"] for i in hard] == ["blue.png"] and hard[0]["uncertainty"] == 0.9
    _error(http.post(f"{JOBS}/r4/priorities", json={"items": {"ghost.png": {"hard": True}}}, headers=who["alice"]),
           404, "not_found")
    deleted = http.delete(f"{JOBS}/r4", headers=who["alice"]).json()
    assert deleted == {"schema": "modelyard.labeling-job-deleted/1", "name": "r4", "items": 2}


def _ls_task(colour: str, task_id: int) -> dict:
    return {"id": task_id, "data": {"image": "data:image/png;base64," + base64.b64encode(colour_png(colour)).decode()},
            "meta": {}, "annotations": [], "predictions": [], "project": 1}


def test_label_studio_predicts_choices_with_basic_auth_or_bearer(api):
    http, who, _ = api
    assert http.get("/labelstudio/colours/health").json()["status"] == "UP"
    request = {"tasks": [_ls_task("green", 7), _ls_task("red", 8)], "model_version": "", "project": "1.1700000000",
               "label_config": CHOICES, "params": {"login": None, "password": None, "context": None}}
    _error(http.post("/labelstudio/colours/predict", json=request), 401, "unauthorized")
    token = who["val"]["Authorization"].removeprefix("Bearer ")
    basic = {"Authorization": "Basic " + base64.b64encode(f"labelstudio:{token}".encode()).decode()}
    answer = http.post("/labelstudio/colours/predict", json=request, headers=basic)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == "colours@1" and len(body["results"]) == 2
    first = body["results"][0]
    assert first["model_version"] == "colours@1" and first["score"] > 0.9
    assert first["result"] == [{"from_name": "colour", "to_name": "img", "type": "choices",
                                "value": {"choices": ["green"]}, "score": first["score"]}]
    assert http.post("/labelstudio/colours@1/predict", json=request, headers=who["val"]).status_code == 200
    assert "cannot propose boxes" in _error(
        http.post("/labelstudio/colours/predict", json={**request, "label_config": BOXES}, headers=who["val"]),
        422, "invalid_input")
    _error(http.post("/labelstudio/nothing/predict", json=request, headers=who["val"]), 404, "not_found")
    broken = {**request, "tasks": [{"id": 9, "data": {"image": "data:image/png;base64,aGVsbG8="}}]}
    assert "task 9: not a readable image" in _error(
        http.post("/labelstudio/colours/predict", json=broken, headers=who["val"]), 422, "invalid_input")


def test_label_studio_reads_and_decodes_a_large_request_a_few_tasks_at_a_time(api, monkeypatch):
    # up to 1000 tasks a request, each a blob digest or a URL: holding every image at once is unbounded memory
    from modelyard.deploy.prelabel import Predictor
    from modelyard.server.routes_labelstudio import PREDICT_CHUNK

    http, who, _ = api
    sizes, propose = [], Predictor.propose
    monkeypatch.setattr(Predictor, "propose", lambda self, images, *a: sizes.append(len(images)) or propose(
        self, images, *a))
    colours = ["red", "green", "blue"] * PREDICT_CHUNK
    request = {"tasks": [_ls_task(c, i) for i, c in enumerate(colours)], "label_config": CHOICES}
    answer = http.post("/labelstudio/colours/predict", json=request, headers=who["val"])
    assert answer.status_code == 200, answer.text
    assert [r["result"][0]["value"]["choices"] for r in answer.json()["results"]] == [[c] for c in colours]
    assert sum(sizes) == len(colours) and max(sizes) <= PREDICT_CHUNK


def test_label_studio_fetches_project_images_only_from_the_host_given_at_setup(api):
    http, who, _ = api
    seen = []

    class Images(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            seen.append((self.path, self.headers.get("Authorization")))
            data = colour_png("blue")
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Images)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"http://127.0.0.1:{server.server_port}"
        request = {"tasks": [{"id": 3, "data": {"image": "/data/upload/1/blue.png"}}], "project": "5.1",
                   "label_config": CHOICES}
        assert "call /setup" in _error(http.post("/labelstudio/colours/predict", json=request, headers=who["val"]),
                                       422, "invalid_input")
        setup = {"project": "5.1", "schema": CHOICES, "hostname": host, "access_token": "ls-secret"}
        _error(http.post("/labelstudio/colours/setup", json=setup, headers=who["val"]), 403, "forbidden")
        assert http.post("/labelstudio/colours/setup", json=setup, headers=who["alice"]).json() == \
            {"model_version": "colours@1"}
        answer = http.post("/labelstudio/colours/predict", json=request, headers=who["val"]).json()
        assert answer["results"][0]["result"][0]["value"] == {"choices": ["blue"]}
        assert seen == [("/data/upload/1/blue.png", "Token ls-secret")]
        elsewhere = {**request, "tasks": [{"id": 4, "data": {"image": "http://10.0.0.1/x.png"}}]}
        assert "not on the project's host" in _error(
            http.post("/labelstudio/colours/predict", json=elsewhere, headers=who["val"]), 422, "invalid_input")
        mismatch = {"project": "6", "schema": CHOICES.replace('"red"', '"cyan"').replace('"green"', '"teal"')
                    .replace('"blue"', '"navy"')}
        assert "share none" in _error(http.post("/labelstudio/colours/setup", json=mismatch, headers=who["val"]),
                                      422, "invalid_input")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_labels_import_over_rest_and_bad_boxes_name_the_item(api):
    http, who, _ = api
    http.post(JOBS, json={"name": "r5", "task": "classification", "dataset": "colours@1"}, headers=who["alice"])
    items = [i["item"] for i in http.get(f"{JOBS}/r5/items", params={"limit": 2}, headers=who["val"]).json()["items"]]
    body = {"items": [{"item": items[0], "labels": ["red"]}, {"item": items[1], "labels": ["green"]}]}
    assert http.post(f"{JOBS}/r5/imports", json=body, headers=who["alice"]).json() == \
        {"schema": "modelyard.labeling-import/1", "imported": 2, "skipped": 0}
    assert http.get(f"{JOBS}/r5/item", params={"id": items[0]}, headers=who["val"]).json()["source"] == "imported"
    boxes = {"items": [{"item": items[0], "boxes": [[1, 2, "x"]]}]}
    assert items[0] in _error(http.post(f"{JOBS}/r5/imports", json=boxes, headers=who["alice"]), 422,
                              "invalid_input")
    _error(http.post(f"{JOBS}/r5/imports", json=body, headers=who["bob"]), 403, "forbidden")
