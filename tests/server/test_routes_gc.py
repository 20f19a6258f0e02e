"""Deletion and blob garbage collection through the SDK and REST: what nothing refers to goes, what is in use,
pinned or fresh stays; roles: delete = editor, gc = admin."""

import os
import time

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from modelyard.core.errors import Conflict, NotFound
from modelyard.core.ids import new_id, utcnow
from modelyard.core.settings import Settings
from modelyard.server.app import create_app
from modelyard.store.schema import jobs
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace


def _folder(root, seed=0):
    rng = np.random.default_rng(seed)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def _age(blobs, digest, seconds=3 * 86_400):
    """Make a blob look written ``seconds`` ago (the grace period protects fresh ones)."""
    path = blobs.path_for(digest)
    past = time.time() - seconds
    os.utime(path, (past, past))


def _age_all(blobs):
    for digest in list(blobs.iter_digests()):
        _age(blobs, digest)


def _queue_job(workspace, spec, status="queued"):
    with workspace.engine.begin() as conn:
        conn.execute(jobs.insert().values(id=new_id("job"), kind="test.kind", spec=spec, status=status,
                                          created_at=utcnow()))


def test_delete_then_gc_frees_only_what_nothing_uses(client, tmp_path):
    workspace = client._workspace
    blobs = workspace.blobs
    client.data.import_path(_folder(tmp_path / "imgs"), "d")
    client.data.prep("d@1", [{"op": "resize", "width": 8, "height": 8}])
    second_manifest = client.data.get("d@2")["manifest"].removeprefix("sha256:")
    resized = {e["digest"] for e in client.data.manifest("d@2")["entries"]}
    kept_files = {e["digest"] for e in client.data.manifest("d@1")["entries"]}
    (tmp_path / "notes.txt").write_text("mine")
    pinned = client.blobs.put(tmp_path / "notes.txt", pin=True, note="keep me")["digest"].removeprefix("sha256:")
    orphan = blobs.put_bytes(b"nobody refers to me").digest
    run = client.runs.create("r")
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"weights")
    client.runs.add_artifact(run["id"], artifact)
    client.runs.finish(run["id"])
    artifact_digest = blobs.put_file(artifact).digest
    _age_all(blobs)

    preview = client.blobs.gc(dry_run=True)
    listed = {d.removeprefix("sha256:") for d in preview["digests"]}
    # only the orphan: the folder was uploaded file by file, and the import's manifest refers to every file
    assert preview["schema"] == "modelyard.blob-gc/1" and listed == {orphan}
    assert blobs.exists(orphan)  # a dry run deletes nothing

    deleted = client.data.delete("d@2")
    assert deleted == {"schema": "modelyard.dataset-deleted/1", "name": "d", "versions_deleted": [2]}
    with pytest.raises(NotFound):
        client.data.get("d@2")
    result = client.blobs.gc(dry_run=False)
    gone = {d.removeprefix("sha256:") for d in result["digests"]}
    assert gone == (resized - kept_files) | {orphan, second_manifest}
    assert result["freed_bytes"] > 0 and not any(blobs.exists(d) for d in gone)
    assert all(blobs.exists(d) for d in kept_files) and blobs.exists(pinned) and blobs.exists(artifact_digest)
    assert client.data.stats("d@1")["stats"]["usable"] == 12  # the surviving version is whole
    assert client.blobs.pins()["items"][0]["note"] == "keep me"

    assert client.runs.delete(run["id"])["schema"] == "modelyard.run-deleted/1"
    assert "sha256:" + artifact_digest in client.blobs.gc(dry_run=False)["digests"]
    client.blobs.unpin("sha256:" + pinned)
    assert "sha256:" + pinned in client.blobs.gc(dry_run=False)["digests"]
    client.data.delete("d")
    assert client.data.list()["items"] == []
    client.blobs.gc(dry_run=False)
    assert list(blobs.iter_digests()) == []


def test_fresh_in_flight_and_pinned_blobs_are_kept(client):
    workspace = client._workspace
    blobs = workspace.blobs
    fresh = blobs.put_bytes(b"an upload whose import has not written its rows yet").digest
    reput = blobs.put_bytes(b"old content uploaded again").digest
    _age(blobs, reput)
    blobs.put_bytes(b"old content uploaded again")  # storing it again makes it fresh
    job_input = blobs.put_bytes(b"input of a queued job").digest
    finished_input = blobs.put_bytes(b"input of a finished job").digest
    job_output = blobs.put_bytes(b"output of a finished job").digest
    _age(blobs, job_input)
    _age(blobs, finished_input)
    _age(blobs, job_output)
    _queue_job(workspace, {"source": "sha256:" + job_input})
    _queue_job(workspace, {"source": "sha256:" + finished_input}, status="succeeded")
    with workspace.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.status == "succeeded").values(result={"output": job_output}))
    result = client.blobs.gc(dry_run=False)
    assert result["digests"] == ["sha256:" + finished_input]
    assert result["kept_recent"] == 2 and all(blobs.exists(d) for d in (fresh, reput, job_input, job_output))
    without_grace = client.blobs.gc(dry_run=True, grace_s=0)["digests"]
    assert sorted(without_grace) == sorted(["sha256:" + fresh, "sha256:" + reput])


def test_in_use_data_and_running_runs_are_refused(client, tmp_path):
    client.data.import_path(_folder(tmp_path / "imgs"), "d")
    _queue_job(client._workspace, {"dataset": "d@1"}, status="running")
    with pytest.raises(Conflict, match="d@1 is used by job"):
        client.data.delete("d@1")
    with pytest.raises(Conflict, match="is used by job"):
        client.data.delete("d")  # the dataset's latest version is that one
    run = client.runs.create("live")
    with pytest.raises(Conflict, match="still running"):
        client.runs.delete(run["id"])
    with pytest.raises(NotFound):
        client.data.delete("nope@1")


def test_roles_and_errors(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    tokens = TokenStore(workspace.engine)
    secrets = {role: tokens.create(role, role)[1] for role in ("viewer", "editor", "admin")}
    try:
        with TestClient(create_app(workspace), raise_server_exceptions=False) as api:
            def h(role):
                return {"Authorization": f"Bearer {secrets[role]}"}

            digest = workspace.blobs.put_bytes(b"x").digest
            assert api.post("/api/v1/blobs/gc", json={}, headers=h("editor")).status_code == 403
            assert api.post("/api/v1/blobs/gc", json={}, headers=h("admin")).json()["dry_run"] is True
            assert api.put(f"/api/v1/pins/{digest}", json={}, headers=h("viewer")).status_code == 403
            assert api.put(f"/api/v1/pins/{digest}", json={"note": "n"}, headers=h("editor")).status_code == 200
            assert api.get("/api/v1/pins", headers=h("viewer")).json()["items"][0]["digest"] == "sha256:" + digest
            assert api.put(f"/api/v1/pins/{'0' * 64}", json={}, headers=h("editor")).status_code == 404
            assert api.delete("/api/v1/datasets/x", headers=h("viewer")).status_code == 403
            assert api.delete("/api/v1/datasets/x", headers=h("editor")).status_code == 404
            assert api.delete("/api/v1/runs/run_x", headers=h("viewer")).status_code == 403
            bad = api.post("/api/v1/blobs/gc", json={"grace_s": -1}, headers=h("admin"))
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    finally:
        workspace.close()


def test_a_missing_manifest_stops_collection_before_anything_is_deleted(client, tmp_path):
    from modelyard.core.errors import ModelyardError

    version = client.data.import_path(_folder(tmp_path / "imgs"), "d")
    blobs = client._workspace.blobs
    orphan = blobs.put_bytes(b"unreferenced").digest
    _age_all(blobs)
    manifest = blobs.path_for(version["manifest"])
    os.chmod(manifest.parent, 0o700)
    manifest.unlink()
    with pytest.raises(ModelyardError, match="manifest .* is missing from the blob store; nothing was collected"):
        client.blobs.gc(dry_run=False)
    assert blobs.exists(orphan)


def test_only_the_pins_creator_or_an_admin_may_unpin(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    tokens = TokenStore(workspace.engine)
    secrets = {name: tokens.create(name, role)[1]
               for name, role in (("alice", "editor"), ("bob", "editor"), ("root", "admin"))}
    try:
        with TestClient(create_app(workspace), raise_server_exceptions=False) as api:
            def h(name):
                return {"Authorization": f"Bearer {secrets[name]}"}

            first, second = workspace.blobs.put_bytes(b"one").digest, workspace.blobs.put_bytes(b"two").digest
            for digest in (first, second):
                assert api.put(f"/api/v1/pins/{digest}", json={}, headers=h("alice")).status_code == 200
            refused = api.delete(f"/api/v1/pins/{first}", headers=h("bob"))
            assert refused.status_code == 403 and "pinned by 'alice'" in refused.json()["error"]["message"]
            assert len(api.get("/api/v1/pins", headers=h("bob")).json()["items"]) == 2
            assert api.delete(f"/api/v1/pins/{first}", headers=h("alice")).status_code == 200
            assert api.delete(f"/api/v1/pins/{second}", headers=h("root")).status_code == 200
            assert api.get("/api/v1/pins", headers=h("bob")).json()["items"] == []
            assert api.delete(f"/api/v1/pins/{second}", headers=h("bob")).status_code == 404
    finally:
        workspace.close()


def test_gc_expires_abandoned_upload_sessions(client):
    blobs = client._workspace.blobs
    old = client.request("POST", "/api/v1/blobs/uploads").json()["id"]
    client.request("PUT", f"/api/v1/blobs/uploads/{old}", params={"offset": 0}, content=b"partial")
    fresh = client.request("POST", "/api/v1/blobs/uploads").json()["id"]
    past = time.time() - 3 * 86_400
    for path in (blobs.root / "uploads").iterdir():
        if path.name.startswith(old):
            os.utime(path, (past, past))
    dry = client.blobs.gc(dry_run=True)
    assert dry["stale_temporary_files"] == 1
    assert client.request("GET", f"/api/v1/blobs/uploads/{old}").json()["offset"] == 7
    assert client.blobs.gc(dry_run=False)["stale_temporary_files"] == 1
    with pytest.raises(NotFound):
        client.request("GET", f"/api/v1/blobs/uploads/{old}")
    assert client.request("GET", f"/api/v1/blobs/uploads/{fresh}").json()["offset"] == 0
    assert not [p for p in (blobs.root / "uploads").iterdir() if p.name.startswith(old)]
