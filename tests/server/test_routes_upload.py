"""Datasets of any size through the API (issue 21 #2a): files go up one request each, the client first asks which
the server lacks (so a rerun resumes), and the import reads a manifest of uploaded blobs."""

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

from modelyard.core.settings import Settings
from modelyard.server.app import create_app
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace
from support import run_cli, start_server


@pytest.fixture
def api(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home", max_body_bytes=4096))
    tokens = TokenStore(workspace.engine)
    editor = tokens.create("editor", "editor")[1]
    with TestClient(create_app(workspace), raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {editor}"}) as client:
        client.workspace = workspace
        yield client
    workspace.close()


def _image_folder(root, classes=("a", "b"), per_class=12, size=24):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in classes:
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def test_missing_names_only_what_the_server_lacks(api):
    have = api.post("/api/v1/blobs", content=b"hello").json()["digest"]
    other = "sha256:" + "ab" * 32
    body = api.post("/api/v1/blobs/missing", json={"digests": [have, other]}).json()
    assert body == {"schema": "modelyard.blob-missing/1", "missing": [other]}
    bad = api.post("/api/v1/blobs/missing", json={"digests": ["nope"]})
    assert bad.status_code == 422 and "not a sha256 digest" in bad.json()["error"]["message"]


def test_a_folder_larger_than_the_body_limit_imports_file_by_file(api, tmp_path):
    """The body limit is 4 KiB here; the folder holds ~50 KiB of PNGs: one zip of it would be refused."""
    folder = _image_folder(tmp_path / "imgs")
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*.png")}
    assert sum(p.stat().st_size for p in files.values()) > 4096 * 10
    assert all(p.stat().st_size < 4096 for p in files.values())
    digests = {}
    for name, path in files.items():
        response = api.post("/api/v1/blobs", content=path.read_bytes())
        assert response.status_code == 201, response.text
        digests[name] = response.json()["digest"]
    version = api.post("/api/v1/datasets/import-files", json={"name": "imgs", "files": digests,
                                                              "source_name": "imgs"})
    assert version.status_code == 201, version.text
    body = version.json()
    assert body["items"] == 24 and body["data_schema"]["classes"] == ["a", "b"] and body["source"]["name"] == "imgs"


def test_import_files_refuses_missing_blobs_and_escaping_names_and_stores_nothing(api):
    digest = api.post("/api/v1/blobs", content=b"x,y\n1,2\n").json()["digest"]
    for files, status, text in [({"a/1.png": "sha256:" + "cd" * 32}, 404, "not uploaded yet"),
                                ({"../../etc/passwd": digest}, 422, "relative file name"),
                                ({"/etc/passwd": digest}, 422, "relative file name"),
                                ({"x" * 240 + ".csv": digest}, 422, "longer than")]:
        response = api.post("/api/v1/datasets/import-files", json={"name": "d", "files": files})
        assert response.status_code == status and text in response.json()["error"]["message"], response.text
    assert api.get("/api/v1/datasets").json()["items"] == []


def test_the_client_resumes_an_interrupted_upload(tmp_path):
    """Half the files are on the server already: the client sends only the other half."""
    from modelyard.client import Client

    folder = _image_folder(tmp_path / "imgs", per_class=6)
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.png"))}
    with Client(home=tmp_path / "home") as client:
        for path in list(files.values())[:6]:
            client.blobs.put(path)
        sent = []
        version = client.data.import_files(files, "imgs", on_progress=lambda done, total, size: sent.append(total))
        assert version["items"] == 12 and sent and set(sent) == {6}


@pytest.mark.slow
def test_cli_imports_a_folder_over_the_body_limit_into_a_real_server(tmp_path):
    """The issue's failure: ``data import DIR`` against ``modelyard server`` answered 413 above the body limit."""
    home = tmp_path / "home"
    token = json.loads(run_cli("init", "--json", home=home, check=True).stdout)["token"]
    (home / "config.toml").write_text("max_body_bytes = 8192\n")
    folder = _image_folder(tmp_path / "imgs", per_class=20)
    server = start_server(home, token=token)
    try:
        out = run_cli("--url", server.url, "--token", server.token, "data", "import", str(folder), "--name", "big",
                      "--json", check=True)
        version = json.loads(out.stdout)
        assert version["items"] == 40 and version["size"] > 8192 * 5
    finally:
        server.stop()


def test_a_file_larger_than_one_body_goes_up_in_chunks_and_resumes_at_the_right_offset(api, tmp_path):
    import hashlib

    data = np.random.default_rng(3).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert api.post("/api/v1/blobs", content=data).status_code == 413
    session = api.post("/api/v1/blobs/uploads").json()
    assert session["offset"] == 0 and session["chunk_bytes"] == 4096
    url = f"/api/v1/blobs/uploads/{session['id']}"
    for start in range(0, len(data), 4000):
        assert api.put(url, params={"offset": start}, content=data[start:start + 4000]).status_code == 200
    wrong = api.put(url, params={"offset": 0}, content=b"again")
    assert wrong.status_code == 409 and f"offset={len(data)}" in wrong.json()["error"]["message"]
    assert api.get(url).json()["offset"] == len(data)
    bad = api.post(url + "/complete", json={"digest": "sha256:" + "0" * 64})
    assert bad.status_code == 422 and not api.workspace.blobs.exists(digest)
    assert api.get(url).status_code == 404  # a failed session is gone
    assert api.get("/api/v1/blobs/uploads/../../etc").status_code == 404
    session = api.post("/api/v1/blobs/uploads").json()
    url = f"/api/v1/blobs/uploads/{session['id']}"
    for start in range(0, len(data), 4000):
        api.put(url, params={"offset": start}, content=data[start:start + 4000]).raise_for_status()
    stored = api.post(url + "/complete", json={"digest": digest})
    assert stored.status_code == 201 and stored.json()["digest"] == digest
    assert api.workspace.blobs.read_bytes(digest) == data


@pytest.mark.slow
def test_the_client_falls_back_to_chunks_when_a_real_server_refuses_a_body(tmp_path):
    from modelyard.client import Client

    home = tmp_path / "home"
    token = json.loads(run_cli("init", "--json", home=home, check=True).stdout)["token"]
    (home / "config.toml").write_text("max_body_bytes = 8192\n")
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(4).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    server = start_server(home, token=token)
    try:
        with Client(url=server.url, token=token) as client:
            stored = client.blobs.put(big)
            assert stored["size"] == 100_000
            client.blobs.get(stored["digest"], tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
    finally:
        server.stop()


def _owner_api(tmp_path, **settings):
    workspace = Workspace.open(Settings.load(tmp_path / "home", max_body_bytes=4096, **settings))
    tokens = TokenStore(workspace.engine)
    secrets = {name: tokens.create(name, role)[1]
               for name, role in (("alice", "editor"), ("bob", "editor"), ("root", "admin"))}
    return workspace, {name: {"Authorization": f"Bearer {secret}"} for name, secret in secrets.items()}


def test_an_upload_session_belongs_to_the_token_that_opened_it(tmp_path):
    workspace, h = _owner_api(tmp_path)
    try:
        with TestClient(create_app(workspace), raise_server_exceptions=False) as api:
            url = "/api/v1/blobs/uploads/" + api.post("/api/v1/blobs/uploads", headers=h["alice"]).json()["id"]
            assert api.put(url, params={"offset": 0}, content=b"abc", headers=h["alice"]).status_code == 200
            for call in (lambda: api.get(url, headers=h["bob"]),
                         lambda: api.put(url, params={"offset": 3}, content=b"evil", headers=h["bob"]),
                         lambda: api.post(url + "/complete", json={"digest": "sha256:" + "0" * 64},
                                          headers=h["bob"])):
                refused = call()
                assert refused.status_code == 403, refused.text
                assert "opened by another token" in refused.json()["error"]["message"]
            assert api.get(url, headers=h["alice"]).json()["offset"] == 3  # bob's chunk and complete changed nothing
            assert api.put(url, params={"offset": 3}, content=b"def", headers=h["root"]).status_code == 200
            assert api.get(url, headers=h["alice"]).json()["offset"] == 6
    finally:
        workspace.close()


def test_a_session_over_max_upload_bytes_gets_413_and_keeps_what_it_held(tmp_path):
    workspace, h = _owner_api(tmp_path, max_upload_bytes=10_000)
    try:
        with TestClient(create_app(workspace), raise_server_exceptions=False, headers=h["alice"]) as api:
            url = "/api/v1/blobs/uploads/" + api.post("/api/v1/blobs/uploads").json()["id"]
            for start in (0, 4000):
                assert api.put(url, params={"offset": start}, content=b"x" * 4000).status_code == 200
            over = api.put(url, params={"offset": 8000}, content=b"x" * 4000)
            assert over.status_code == 413 and over.json()["error"]["code"] == "payload_too_large"
            assert "max_upload_bytes=10000" in over.json()["error"]["message"]
            assert api.get(url).json()["offset"] == 8000
            assert api.put(url, params={"offset": 8000}, content=b"x" * 2000).status_code == 200
    finally:
        workspace.close()


def test_the_client_retries_a_failed_chunk_from_the_offset_the_server_holds(tmp_path, monkeypatch):
    """One chunk's answer is lost after the server stored it, the next chunk never arrives: the client asks the
    session for its offset each time and carries on in the same session."""
    import hashlib

    import httpx

    from modelyard.client import Client
    from modelyard.client import client as client_module

    monkeypatch.setattr(client_module, "CHUNK_RETRY_DELAY_S", 0.0)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.toml").write_text("max_body_bytes = 4096\n")
    data = np.random.default_rng(5).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    with Client(home=tmp_path / "home") as client:
        real = client._http.request
        puts = []

        def flaky(method, path, **kwargs):
            if method == "PUT" and "/blobs/uploads/" in path:
                puts.append(kwargs["params"]["offset"])
                if len(puts) == 2:  # stored, but the answer is lost
                    real(method, path, **kwargs)
                    raise httpx.ReadTimeout("lost")
                if len(puts) == 4:  # never reaches the server
                    raise httpx.ConnectError("refused")
            if method == "POST" and path == "/api/v1/blobs/uploads" and puts:
                raise AssertionError("the client opened a second session instead of resuming")
            return real(method, path, **kwargs)

        monkeypatch.setattr(client._http, "request", flaky)
        stored = client.blobs.put_chunked(big)
        assert stored["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert puts == [0, 4096, 8192, 12288, 12288, 16384]
        assert list((tmp_path / "home" / "blobs" / "uploads").iterdir()) == []

        def dead(method, path, **kwargs):
            if method == "PUT":
                raise httpx.ConnectError("refused")
            return real(method, path, **kwargs)

        monkeypatch.setattr(client._http, "request", dead)
        from modelyard.core.errors import Unavailable

        with pytest.raises(Unavailable):
            client.blobs.put_chunked(big)
def test_untyped_binary_bodies_reach_the_blob_routes_unparsed(api):
    # curl --data-binary sends no Content-Type: a file full of '[' is bytes to store, not JSON nested too deep
    import hashlib

    data = b"\x00" + b"[" * 200 + b"\xff"
    stored = api.post("/api/v1/blobs", content=data)
    assert stored.status_code == 201 and stored.json()["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    upload = api.post("/api/v1/blobs/uploads", json={})
    assert upload.status_code == 201, upload.text
    chunk = api.put(f"/api/v1/blobs/uploads/{upload.json()['id']}?offset=0", content=b"[" * 100)
    assert chunk.status_code == 200, chunk.text
    # a JSON route still refuses the same nesting
    assert api.post("/api/v1/blobs/missing", content=b"[" * 100).status_code == 400
