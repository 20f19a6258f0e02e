"""Every job kind, submitted through the API with hostile specs by an editor (issue 21 #0 and #3): code outside the
built-in zoo and paths on the server are refused at submit with 403 (422 for malformed names), nothing is queued
and nothing is written; the admin role may still do both."""

import io
import json
import zipfile
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from modelyard.core import plugins
from modelyard.core.settings import Settings
from modelyard.server.app import create_app
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace

EXPLOIT = {"entrypoint": "subprocess:run", "kwargs": {"args": ["sh", "-c", "id > pwned.txt"]},
           "inputs": [{"name": "x", "shape": [1, 4]}]}
ZOO = {"entrypoint": "modelyard.runtime.zoo:tiny_mlp", "kwargs": {"in_features": 4},
       "inputs": [{"name": "x", "shape": [1, 4]}]}
# kinds whose specs name neither code nor paths (only registry/dataset names, numbers, flags)
PATH_FREE = {"blob.verify", "system.sleep", "automl.train", "evaluate", "label.propose", "label.suggest",
             "label.group", "edge.package"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    workspace = Workspace.open(Settings.load(tmp_path_factory.mktemp("trust") / "home"))
    tokens = TokenStore(workspace.engine)
    secrets = {role: tokens.create(role, role)[1] for role in ("editor", "admin")}
    with TestClient(create_app(workspace), raise_server_exceptions=False) as client:
        client.workspace = workspace
        client.headers_for = {role: {"Authorization": f"Bearer {s}"} for role, s in secrets.items()}
        yield client
    workspace.close()


def _upload(api, data: bytes) -> str:
    return api.post("/api/v1/blobs", content=data, headers=api.headers_for["editor"]).json()["digest"]


def _hostile(api, outside: Path) -> list[tuple[str, dict, int, str]]:
    """(kind, spec, status, error code) for each attack; ``outside`` is a path no job may write."""
    migration = _upload(api, json.dumps({"name": "m", "model": EXPLOIT}).encode())
    python_path = _upload(api, json.dumps({"name": "m", "model": ZOO, "python_path": ["."]}).encode())
    source = _upload(api, json.dumps({"name": "m", "model": ZOO, "source": "/etc"}).encode())
    spec_file = _upload(api, json.dumps(EXPLOIT).encode())
    by_name = _upload(api, json.dumps({"name": "m", "model": "evil.yaml"}).encode())
    out = str(outside)
    forbidden_code, forbidden_path = "code_not_allowed", "server_path_not_allowed"
    cases = []
    for kind in ("migrate.convert", "migrate.compare", "migrate.coverage", "migrate.benchmark", "migrate.optimize"):
        cases += [
            (kind, {"spec": EXPLOIT}, 403, forbidden_code),
            (kind, {"spec": {**EXPLOIT, "entrypoint": "os:system"}}, 403, forbidden_code),
            (kind, {"spec": {**ZOO, "entrypoint": "modelyard.runtime.zoo:_seeded"}}, 403, forbidden_code),
            (kind, {"spec": {**ZOO, "entrypoint": "modelyard.runtime.zoo:annotations"}}, 403, forbidden_code),
            (kind, {"spec": "spec.yaml", "files": {"spec.yaml": spec_file}}, 403, forbidden_code),
            (kind, {"spec": "/etc/passwd"}, 403, forbidden_path),
            (kind, {"spec": "../../../etc/passwd.yaml"}, 403, forbidden_path),
            (kind, {"spec": {**ZOO, "entrypoint": None, "onnx": "/etc/passwd"}}, 403, forbidden_path),
            (kind, {"spec": {**ZOO, "weights": "~/.ssh/id_rsa"}}, 403, forbidden_path),
            (kind, {"spec": {**ZOO, "dataset": "/etc"}}, 403, forbidden_path),
            (kind, {"spec": {**ZOO, "inputs": [{"name": "x", "shape": [1, 4], "data": "/etc/x.npy"}]}}, 403,
             forbidden_path),
            (kind, {"spec": ZOO, "files": {"../x": spec_file}}, 422, "invalid_input"),
        ]
    cases += [
        ("migrate.convert", {"spec": ZOO, "calib": "/etc"}, 403, forbidden_path),
        ("migrate.compare", {"spec": ZOO, "target_model": "/etc/passwd"}, 403, forbidden_path),
        ("migrate.compare", {"spec": ZOO, "data": "../../etc"}, 403, forbidden_path),
        ("migrate.coverage", {"spec": ZOO, "model": "/etc/passwd"}, 403, forbidden_path),
        ("migrate.benchmark", {"spec": ZOO, "data": "/etc"}, 403, forbidden_path),
        ("migrate.optimize", {"spec": ZOO, "calib": "/etc"}, 403, forbidden_path),
        ("migrate.analyze", {"path": "/etc/passwd"}, 403, forbidden_path),
        ("migrate.analyze", {"path": "p", "rules": ["/etc/passwd"]}, 403, forbidden_path),
        ("migrate.apply", {"path": "/etc", "target": "any", "out": out}, 403, forbidden_path),
        ("migrate.apply", {"path": "p", "target": "any", "out": out}, 403, forbidden_path),
        ("migrate.apply", {"path": "/etc", "target": "any", "in_place": True}, 403, forbidden_path),
        ("migrate.run", {"migration": "/etc/passwd"}, 403, forbidden_path),
        ("migrate.run", {"migration": "m.yaml", "files": {"m.yaml": migration}, "out": out}, 403, forbidden_path),
        ("migrate.run", {"migration": "m.yaml", "files": {"m.yaml": migration}}, 403, forbidden_code),
        ("migrate.run", {"migration": "m.yaml", "files": {"m.yaml": python_path}}, 403, forbidden_code),
        ("migrate.run", {"migration": "m.yaml", "files": {"m.yaml": source}}, 403, forbidden_path),
        ("migrate.run", {"migration": "m/m.yaml", "files": {"m/m.yaml": by_name, "m/evil.yaml": spec_file}}, 403,
         forbidden_code),
        ("batch.predict", {"model": "m@1", "input": "/etc/passwd", "output": out + ".csv"}, 403, forbidden_path),
        ("batch.predict", {"model": "m@1", "dataset": "d@1", "output": out + ".csv"}, 403, forbidden_path),
        # a training script is code run on the workers: never an editor's to submit
        ("train", {"script": _upload(api, b"import os\nos.system('id > pwned.txt')\n")}, 403, forbidden_code),
        # tune names registry and dataset versions only: a path where a name belongs is not a name
        ("tune", {"base": "/etc/passwd", "data": "d@1"}, 422, "invalid_input"),
        # edge.package names a registry version and a target: a path where the name belongs is not a name
        ("edge.package", {"model": "/etc/passwd", "target": "cpu-x86"}, 422, "invalid_input"),
        ("edge.package", {"model": "m@1", "target": "../../etc"}, 422, "invalid_input"),
    ]
    return cases


def test_every_kind_is_audited():
    """A new built-in kind must get hostile cases here, or be declared free of code and paths."""
    audited = {"migrate.convert", "migrate.compare", "migrate.coverage", "migrate.benchmark", "migrate.optimize",
               "migrate.analyze", "migrate.apply", "migrate.run", "batch.predict", "train", "tune"}
    assert set(plugins.JOB_KINDS) == audited | PATH_FREE
    for name in audited:
        assert plugins.load_job_kind(name).authorize is not None, name
    for name in PATH_FREE:
        schema = json.dumps(plugins.load_job_kind(name).spec_model.model_json_schema())
        assert not any(word in schema for word in ('"path"', '"input"', '"output"', '"out"', '"entrypoint"')), name


def test_an_editor_is_refused_code_and_server_paths_by_every_kind(api, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside"
    before = len(api.get("/api/v1/jobs", headers=api.headers_for["admin"]).json()["items"])
    for kind, spec, status, code in _hostile(api, outside):
        response = api.post("/api/v1/jobs", json={"kind": kind, "spec": spec}, headers=api.headers_for["editor"])
        assert response.status_code == status, (kind, spec, response.text)
        error = response.json()["error"]
        assert error["code"] == code, (kind, spec, error)
        if status == 403:
            assert "admin" in error["message"], error
    assert len(api.get("/api/v1/jobs", headers=api.headers_for["admin"]).json()["items"]) == before
    assert not list(tmp_path.iterdir()) and not Path("pwned.txt").exists()
    assert list(api.workspace.settings.jobs_dir.iterdir()) == []


def _register_model(api, tmp_path) -> str:
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    digest = _upload(api, model.SerializeToString())
    api.post("/api/v1/models/ident/versions", json={"files": {"model.onnx": digest}, "entry": "model.onnx"},
             headers=api.headers_for["admin"]).raise_for_status()
    return "ident@1"


def test_the_admin_role_may_run_code_and_name_server_paths(api, tmp_path):
    """Allowed at submit (the admin owns the host); cancelled before any worker could run them."""
    model = _register_model(api, tmp_path)
    for kind, spec in [("migrate.convert", {"spec": EXPLOIT}),
                       ("migrate.apply", {"path": str(tmp_path), "target": "any", "out": str(tmp_path / "o")}),
                       ("batch.predict", {"model": model, "input": "/etc/passwd", "output": str(tmp_path / "o.csv")})]:
        response = api.post("/api/v1/jobs", json={"kind": kind, "spec": spec}, headers=api.headers_for["admin"])
        assert response.status_code == 201, response.text
        api.post(f"/api/v1/jobs/{response.json()['id']}/cancel", headers=api.headers_for["admin"]).raise_for_status()


def test_an_editor_may_use_the_zoo_and_uploaded_files(api):
    project = io.BytesIO()
    with zipfile.ZipFile(project, "w") as bundle:
        bundle.writestr("p/train.py", "import torch\nx = torch.zeros(1).cuda()\n")
    digest = _upload(api, project.getvalue())
    spec_file = _upload(api, json.dumps(ZOO).encode())
    migration = _upload(api, json.dumps({"name": "m", "model": "model.yaml", "source": "p.zip"}).encode())
    for kind, spec in [("migrate.convert", {"spec": ZOO}),
                       ("migrate.compare", {"spec": "cnn.yaml", "files": {"cnn.yaml": spec_file}}),
                       ("migrate.run", {"migration": "proj/MIGRATION.yaml", "files": {
                           "proj/MIGRATION.yaml": migration, "proj/model.yaml": spec_file, "proj/p.zip": digest}}),
                       ("migrate.analyze", {"path": "p.zip", "files": {"p.zip": digest}}),
                       ("migrate.apply", {"path": "p.zip", "target": "any", "files": {"p.zip": digest}})]:
        response = api.post("/api/v1/jobs", json={"kind": kind, "spec": spec}, headers=api.headers_for["editor"])
        assert response.status_code == 201, response.text
        api.post(f"/api/v1/jobs/{response.json()['id']}/cancel", headers=api.headers_for["admin"]).raise_for_status()
    missing = api.post("/api/v1/jobs", json={"kind": "migrate.analyze", "spec": {
        "path": "p.zip", "files": {"p.zip": "sha256:" + "1" * 64}}}, headers=api.headers_for["editor"])
    assert missing.status_code == 404 and "not in the blob store" in missing.json()["error"]["message"]


def test_a_relative_out_is_written_inside_the_jobs_own_folder_never_the_workers_cwd(api, tmp_path, monkeypatch):
    """A relative ``out`` such as "onnxruntime" used to resolve against the worker's cwd, which ``python -m`` puts
    first on sys.path: an editor could plant a package the next runner imports."""
    from modelyard.core.jobkind import LocalJobContext

    files = {"proj/__init__.py": _upload(api, b"raise SystemExit('imported')\n"),
             "proj/train.py": _upload(api, b"import torch\nx = torch.zeros(1).cuda()\n")}
    response = api.post("/api/v1/jobs", headers=api.headers_for["editor"], json={
        "kind": "migrate.apply", "spec": {"path": "proj", "target": "cpu", "out": "onnxruntime", "files": files}})
    assert response.status_code == 201, response.text
    api.post(f"/api/v1/jobs/{response.json()['id']}/cancel", headers=api.headers_for["admin"]).raise_for_status()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    kind = plugins.load_job_kind("migrate.apply")
    workdirs = [tmp_path / "jobs" / "j1", tmp_path / "jobs" / "j2"]
    for workdir in workdirs:  # two jobs naming the same out write (and reuse) nothing of each other's
        kind.run(kind.validate_spec(response.json()["spec"]), LocalJobContext(home=api.workspace.settings.home,
                                                                                 workdir=workdir))
        assert (workdir / "onnxruntime" / "__init__.py").is_file()
    assert list(cwd.iterdir()) == []
    escaping = api.post("/api/v1/jobs", headers=api.headers_for["editor"], json={
        "kind": "migrate.run", "spec": {"migration": "m.yaml", "out": "x/../../..", "files": {"m.yaml": files[
            "proj/train.py"]}}})
    assert escaping.status_code == 403, escaping.text


def test_output_path_joins_relative_outs_to_the_job_folder(tmp_path):
    from modelyard.core.jobkind import LocalJobContext
    from modelyard.migrate.job_inputs import output_path

    first, second = (LocalJobContext(home=tmp_path, workdir=tmp_path / name) for name in ("j1", "j2"))
    assert output_path("onnxruntime", first) == tmp_path / "j1" / "onnxruntime"
    assert output_path("onnxruntime", second) == tmp_path / "j2" / "onnxruntime"
    assert output_path(None, first) == tmp_path / "j1"
    assert output_path(None, first, default="migrated") == tmp_path / "j1" / "migrated"
    assert output_path(str(tmp_path / "abs"), first) == tmp_path / "abs"  # the admin's own path, checked at submit


class _Recorded(Exception):
    pass


def _record_popen(monkeypatch) -> dict:
    import subprocess

    seen = {}

    def fake_popen(cmd, **kwargs):
        seen.update(kwargs, cmd=cmd)
        raise _Recorded

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    return seen


@pytest.mark.parametrize("which", ["runner", "worker"])
def test_job_processes_start_in_the_workspace_home_without_the_cwd_on_sys_path(tmp_path, monkeypatch, which):
    from modelyard.cli.system import WorkerKeeper
    from modelyard.jobs.executor import LocalExecutor

    home = tmp_path / "home"
    home.mkdir()
    seen = _record_popen(monkeypatch)
    with pytest.raises(_Recorded):
        if which == "runner":
            LocalExecutor(Settings.load(home)).start("job1", tmp_path / "log.txt")
        else:
            WorkerKeeper(home, None)._spawn()
    assert Path(seen["cwd"]) == home
    assert seen["env"]["PYTHONSAFEPATH"] == "1"


def test_replicas_and_the_supervisor_get_a_safe_path(tmp_path):
    from modelyard.deploy.supervisor import _child_env

    assert _child_env(Settings.load(tmp_path / "home"))["PYTHONSAFEPATH"] == "1"


@pytest.mark.parametrize(("names", "named"), [(["a", "a/b"], "'a' is both"), (["a/b", "a"], "'a' is both"),
                                              (["a/b/c", "a/b"], "'a/b' is both"), (["x\x00y.csv"], "control"),
                                              (["x\ny.csv"], "control")])
def test_file_names_that_clash_or_hold_control_characters_are_refused(api, names, named):
    """They used to end in 500s (FileExistsError, IsADirectoryError, ValueError) when the files were laid out."""
    digest = _upload(api, b"a,b\n1,2\n")
    files = dict.fromkeys(names, digest)
    for path, body in [("/api/v1/datasets/import-files", {"name": "clash", "files": files}),
                       ("/api/v1/jobs", {"kind": "migrate.analyze", "spec": {"path": names[0], "files": files}})]:
        response = api.post(path, json=body, headers=api.headers_for["editor"])
        assert response.status_code == 422, (path, names, response.text)
        assert named in response.json()["error"]["message"], response.text


@pytest.mark.parametrize("name", ["s.json", "s.yaml"])
def test_a_deeply_nested_spec_file_is_refused_not_a_crash(api, name):
    files = {name: api.post("/api/v1/blobs", content=b"[" * 5000, headers={
        **api.headers_for["editor"], "content-type": "application/octet-stream"}).json()["digest"]}
    response = api.post("/api/v1/jobs", json={"kind": "migrate.convert", "spec": {"spec": name, "files": files}},
                        headers=api.headers_for["editor"])
    assert response.status_code == 422, response.text
    assert name in response.json()["error"]["message"]
