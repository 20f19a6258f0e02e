"""The registry's REST API in-process with real tokens: roles, registration from blobs or a job's output, reads,
aliases, deletes, and errors in the API's shape."""

import json
import shutil

import pytest
from starlette.testclient import TestClient

from modelyard.core.settings import Settings
from modelyard.server.app import create_app
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace
from support import matmul_onnx


def linear_onnx(path):
    return matmul_onnx(path)


@pytest.fixture
def api(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    tokens = TokenStore(workspace.engine)
    secrets = {role: tokens.create(role, role)[1] for role in ("viewer", "editor", "admin")}
    with TestClient(create_app(workspace), raise_server_exceptions=False) as client:
        client.secrets, client.workspace = secrets, workspace
        client.model_path = linear_onnx(tmp_path / "m.onnx")
        yield client
    workspace.close()


def auth(api, role):
    return {"Authorization": f"Bearer {api.secrets[role]}"}


def upload(api, path):
    return api.post("/api/v1/blobs", content=path.read_bytes(), headers=auth(api, "editor")).json()["digest"]


def register(api, name="mm", role="editor", **extra):
    body = {"files": {"model.onnx": upload(api, api.model_path)}, "entry": "model.onnx", **extra}
    return api.post(f"/api/v1/models/{name}/versions", json=body, headers=auth(api, role))


def test_roles_and_tokens(api):
    assert api.get("/api/v1/models").status_code == 401
    response = register(api, role="viewer")
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert register(api).status_code == 201
    assert api.get("/api/v1/models", headers=auth(api, "viewer")).json()["items"][0]["name"] == "mm"


def test_register_read_alias_delete(api):
    created = register(api, metrics={"acc": 0.8}, tags={"owner": "me"}).json()
    assert created["schema"] == "modelyard.model-version/1" and created["ref"] == "mm@1"
    assert created["signature"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 2]}]
    assert created["created_by"] == "editor"
    register(api)
    viewer = auth(api, "viewer")
    assert api.put("/api/v1/models/mm/aliases/production", json={"version": 1},
                   headers=auth(api, "editor")).json()["aliases"] == ["production"]
    assert api.get("/api/v1/models/mm/versions/production", headers=viewer).json()["version"] == 1
    assert api.get("/api/v1/models/mm/versions/latest", headers=viewer).json()["version"] == 2
    card = api.get("/api/v1/models/mm/versions/1/card", headers=viewer)
    assert card.headers["content-type"].startswith("text/markdown") and "| acc | 0.8 |" in card.text
    model = api.get("/api/v1/models/mm", headers=viewer).json()
    assert [v["version"] for v in model["versions"]] == [2, 1] and model["aliases"] == {"production": 1}
    assert api.delete("/api/v1/models/mm/versions/1", headers=auth(api, "editor")).status_code == 200
    missing = api.get("/api/v1/models/mm/versions/production", headers=viewer)
    assert missing.status_code == 404 and "no alias" in missing.json()["error"]["message"]
    assert api.delete("/api/v1/models/mm", headers=auth(api, "editor")).json()["versions_deleted"] == 1


def test_errors_have_the_api_shape(api):
    bad_name = register(api, name="bad name!")
    assert bad_name.status_code == 422 and "model name" in bad_name.json()["error"]["message"]
    no_files = api.post("/api/v1/models/mm/versions", json={}, headers=auth(api, "editor"))
    assert no_files.status_code == 422 and "files and entry" in no_files.json()["error"]["message"]
    unknown = api.post("/api/v1/models/mm/versions", json={"files": {"model.onnx": "sha256:" + "1" * 64},
                                                          "entry": "model.onnx"}, headers=auth(api, "editor"))
    assert unknown.status_code == 404
    extra = api.post("/api/v1/models/mm/versions", json={"files": {}, "surprise": 1}, headers=auth(api, "editor"))
    assert extra.status_code == 422
    assert api.get("/api/v1/models/none", headers=auth(api, "viewer")).status_code == 404


def test_register_the_model_a_job_produced(api):
    import sqlalchemy as sa

    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    queue = JobQueue(api.workspace)
    job = queue.submit("system.sleep", {"seconds": 0})
    produced = queue.job_dir(job.id) / "work" / "model.onnx"
    produced.parent.mkdir(parents=True)
    shutil.copy(api.model_path, produced)
    with api.workspace.engine.begin() as conn:  # as a finished migrate.convert job leaves it
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(
            status="succeeded", result={"artifact": {"format": "onnx", "path": str(produced)}}))
    created = api.post("/api/v1/models/conv/versions", json={"from_job": job.id}, headers=auth(api, "editor"))
    assert created.status_code == 201, created.text
    lineage = created.json()["lineage"]["job"]
    assert lineage["id"] == job.id and lineage["kind"] == "system.sleep"
    assert json.loads(json.dumps(lineage))["artifact"]["path"] == str(produced)
    outside = api.post("/api/v1/models/conv/versions", json={"from_job": "job_nope"}, headers=auth(api, "editor"))
    assert outside.status_code == 404


def post_raw(api, path, text, role="editor"):
    """A body as a hand-written client sends it: Python's json (and curl users) can write NaN and Infinity."""
    return api.post(path, content=text.encode(), headers={**auth(api, role), "Content-Type": "application/json"})


def image_onnx(path):
    """Per-channel mean of ``[batch, 3, 2, 2]``: an input that image preprocessing can feed."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["mean"])], "image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 2, 2])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("field, value", [("lineage", '{"loss": NaN}'), ("lineage", '{"x": [1, -Infinity]}'),
                                          ("lineage", '{"big": 1e999}'),
                                          ("preprocessing", '{"mean": [NaN, 0, 0]}')])
def test_non_finite_values_in_free_form_fields_are_422_and_write_nothing(api, tmp_path, field, value):
    digest = upload(api, image_onnx(tmp_path / "image.onnx"))
    body = f'{{"files": {{"model.onnx": "{digest}"}}, "entry": "model.onnx", "{field}": {value}}}'
    response = post_raw(api, "/api/v1/models/mm/versions", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"
    assert api.get("/api/v1/models/mm", headers=auth(api, "viewer")).status_code == 404
    assert register(api).status_code == 201 and api.get("/api/v1/models/mm", headers=auth(api, "viewer")).json()


def test_non_finite_strings_are_refused_where_validation_would_make_them_floats(api, tmp_path):
    """Pydantic reads the string "NaN" as a float NaN: what would be stored is checked, not only what came in."""
    api.model_path = image_onnx(tmp_path / "image.onnx")
    response = register(api, preprocessing={"mean": ["NaN", 0, 0]})
    assert response.status_code == 422 and "preprocessing" in response.json()["error"]["message"], response.text
    assert register(api, metrics={"acc": "Infinity"}).status_code == 422
    assert api.get("/api/v1/models/mm", headers=auth(api, "viewer")).status_code == 404
    assert register(api, preprocessing={"mean": [0.5, 0.5, 0.5]}).status_code == 201
