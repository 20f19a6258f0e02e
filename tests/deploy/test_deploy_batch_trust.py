"""``batch.predict`` reads and writes no server path a caller names unless the caller is admin: inputs arrive as
uploaded blobs or a dataset version, the output goes to the job's folder and comes back as a blob (issue 21 #3)."""

from pathlib import Path

import numpy as np
import pytest
from deploy_models import deploy_models, linear_expected  # noqa: F401 - fixtures
from starlette.testclient import TestClient

from modelyard.deploy.batch import BatchSpec, run_batch

ROWS = 30


class Ctx:
    def __init__(self, home: Path, workdir: Path):
        self.job_id, self.home, self.workdir, self.lines = "job_test", home, workdir, []

    def progress(self, fraction, message=""):
        pass

    def log(self, message):
        self.lines.append(message)

    def cancelled(self):
        return False


@pytest.fixture(scope="module")
def api(tmp_path_factory, deploy_models):
    from modelyard.client import Client
    from modelyard.core.settings import Settings
    from modelyard.server.app import create_app
    from modelyard.store.tokens import TokenStore
    from modelyard.store.workspace import Workspace

    home = tmp_path_factory.mktemp("batch-trust") / "home"
    with Client(home=home) as client:
        client.models.register(deploy_models / "linear.onnx", "linear")
    workspace = Workspace.open(Settings.load(home))
    tokens = TokenStore(workspace.engine)
    secrets = {role: tokens.create(role, role)[1] for role in ("editor", "admin")}
    with TestClient(create_app(workspace), raise_server_exceptions=False) as client:
        client.home, client.workspace = home, workspace
        client.headers_for = {role: {"Authorization": f"Bearer {secret}"} for role, secret in secrets.items()}
        yield client
    workspace.close()


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    folder = tmp_path_factory.mktemp("batch-trust-data")
    x = np.random.default_rng(1).normal(size=(ROWS, 4)).astype(np.float32)
    pacsv.write_csv(pa.table({"id": [f"r{i}" for i in range(ROWS)], **{f"f{j}": x[:, j] for j in range(4)}}),
                    folder / "in.csv")
    return folder / "in.csv", x


def _jobs(api) -> int:
    return len(api.get("/api/v1/jobs", headers=api.headers_for["admin"]).json()["items"])


def test_an_editor_cannot_read_or_overwrite_server_files_through_batch(api, table, tmp_path):
    """The exploit of the issue: an editor's batch job naming /any/readable.csv and /any/writable.csv."""
    readable, _ = table
    victim = tmp_path / "victim.csv"
    victim.write_text("precious\n")
    before = _jobs(api)
    for spec, field in [({"input": str(readable), "output": str(victim)}, "spec.input"),
                        ({"input": "/etc/passwd", "output": "/tmp/outside.csv"}, "spec.input"),
                        ({"dataset": "nope@1", "output": str(tmp_path / "outside.csv")}, "spec.output")]:
        response = api.post("/api/v1/jobs", json={"kind": "batch.predict", "spec": {"model": "linear@1", **spec}},
                            headers=api.headers_for["editor"])
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "server_path_not_allowed" and error["message"].startswith(field)
        assert "admin" in error["message"]
    assert victim.read_text() == "precious\n" and not (tmp_path / "outside.csv").exists()
    assert _jobs(api) == before
    relative = api.post("/api/v1/jobs", json={"kind": "batch.predict", "spec": {
        "model": "linear@1", "input": "../../etc/passwd"}}, headers=api.headers_for["editor"])
    assert relative.status_code == 422 and "absolute path" in relative.json()["error"]["message"]


def test_an_admin_may_still_name_server_paths(api, table, tmp_path):
    readable, _ = table
    response = api.post("/api/v1/jobs", json={"kind": "batch.predict", "spec": {
        "model": "linear@1", "input": str(readable), "output": str(tmp_path / "o.csv")}},
        headers=api.headers_for["admin"])
    assert response.status_code == 201, response.text
    api.post(f"/api/v1/jobs/{response.json()['id']}/cancel", headers=api.headers_for["admin"]).raise_for_status()


def test_an_editor_batches_uploaded_files_and_gets_the_output_as_a_blob(api, table, tmp_path, linear_expected):
    import io

    import pyarrow.parquet as pq

    readable, x = table
    uploaded = api.post("/api/v1/blobs", content=readable.read_bytes(), headers=api.headers_for["editor"]).json()
    missing = api.post("/api/v1/jobs", json={"kind": "batch.predict", "spec": {
        "model": "linear@1", "input_files": {"in.csv": "sha256:" + "0" * 64}}}, headers=api.headers_for["editor"])
    assert missing.status_code == 404 and "not in the blob store" in missing.json()["error"]["message"]
    job = api.post("/api/v1/jobs", json={"kind": "batch.predict", "spec": {
        "model": "linear@1", "input_files": {"in.csv": uploaded["digest"]}, "key": "id"}},
        headers=api.headers_for["editor"])
    assert job.status_code == 201, job.text
    api.post(f"/api/v1/jobs/{job.json()['id']}/cancel", headers=api.headers_for["admin"]).raise_for_status()
    workdir = tmp_path / "job" / "work"
    result = run_batch(BatchSpec.model_validate(job.json()["spec"]), Ctx(api.home, workdir))
    assert result["output"] == "output.parquet" and result["rows"] == ROWS
    assert {p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file()} == {
        "input/in.csv", "output.parquet"}
    body = api.get(f"/api/v1/blobs/{result['output_blob']['digest']}", headers=api.headers_for["editor"]).content
    out = pq.read_table(io.BytesIO(body))
    assert out["id"].to_pylist() == [f"r{i}" for i in range(ROWS)]
    np.testing.assert_allclose(np.array(out["y"].to_pylist()), linear_expected(x), rtol=1e-5)


def test_a_dataset_version_is_an_input_without_its_label(api, tmp_path, linear_expected):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from modelyard.data.datasets import DatasetStore

    x = np.random.default_rng(2).normal(size=(40, 4)).astype(np.float32)
    pacsv.write_csv(pa.table({**{f"f{j}": x[:, j] for j in range(4)}, "label": np.arange(40) % 2}),
                    tmp_path / "d.csv")
    DatasetStore(api.workspace).import_path(tmp_path / "d.csv", "feats", label="label")
    spec = BatchSpec(model="linear@1", dataset="feats@1", output_format="npz")
    result = run_batch(spec, Ctx(api.home, tmp_path / "work"))
    with np.load(tmp_path / "work" / "output.npz") as data:
        np.testing.assert_allclose(data["y"], linear_expected(x), rtol=1e-5)
    assert result["output_blob"]["name"] == "output.npz"


def test_exactly_one_input_is_named():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one of input_files"):
        BatchSpec(model="m@1")
    with pytest.raises(ValidationError, match="exactly one of input_files"):
        BatchSpec(model="m@1", dataset="d@1", input="/x.csv")
    with pytest.raises(ValidationError, match="relative file name"):
        BatchSpec(model="m@1", input_files={"/etc/passwd": "sha256:" + "0" * 64})
