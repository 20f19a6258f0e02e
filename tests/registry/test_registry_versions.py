"""The registry on SQLite and PostgreSQL: immutable numbered versions, signatures read from the artifact, aliases,
references, lineage, cards, deletion rules, resolution to verified local files."""

import threading

import numpy as np
import pytest
from registry_models import linear_weights, model_dir  # noqa: F401 - fixtures

from modelyard.core.errors import Conflict, IntegrityError, InvalidInput, NotFound
from modelyard.registry.refs import ModelRef, is_registry_ref, parse_ref
from modelyard.registry.resolve import resolve, resolve_spec
from modelyard.registry.versions import ModelRegistry


def upload(workspace, path):
    return {"model.onnx": "sha256:" + workspace.blobs.put_file(path).digest}


def register(workspace, path, name="linear", **kwargs):
    return ModelRegistry(workspace).create_version(name, upload(workspace, path), "model.onnx", "onnx", **kwargs)


def test_versions_are_numbered_and_carry_signature_metrics_tags_and_card(workspace, model_dir):
    v1 = register(workspace, model_dir / "linear.onnx", metrics={"acc": 0.9}, tags={"team": "vision"},
                  lineage={"dataset": "toy@1"}, description="A linear toy.")
    v2 = register(workspace, model_dir / "linear2.onnx")
    assert (v1.version, v2.version) == (1, 2) and v1.ref == "linear@1"
    sig = v1.signature
    assert [(t.name, t.dtype, t.shape) for t in sig.inputs] == [("x", "float32", ("batch", 4))]
    assert [(t.name, t.shape) for t in sig.outputs] == [("y", ("batch", 3))] and sig.batchable
    assert v1.metrics == {"acc": 0.9} and v1.tags == {"team": "vision"} and v1.lineage == {"dataset": "toy@1"}
    assert v1.files["model.onnx"]["digest"] != v2.files["model.onnx"]["digest"]
    for text in ("# linear @ 1", "| input | x | float32 | (batch, 4) |", "| acc | 0.9 |", "toy@1", "A linear toy."):
        assert text in v1.card
    again = ModelRegistry(workspace).get_version("linear@1")
    assert again.to_dict() == v1.to_dict() and again.card == v1.card
    listing = ModelRegistry(workspace).list_models()
    assert listing[0]["name"] == "linear" and listing[0]["latest"] == 2 and listing[0]["versions"] == 2


def test_aliases_move_versions_do_not(workspace, model_dir):
    registry = ModelRegistry(workspace)
    register(workspace, model_dir / "linear.onnx")
    register(workspace, model_dir / "linear2.onnx")
    registry.set_alias("linear", "production", 1)
    assert registry.get_version("linear@production").version == 1
    registry.set_alias("linear", "production", 2)
    assert registry.get_version("modelyard://linear@production").version == 2
    assert registry.get_version("linear").version == 2 and registry.get_version("linear@latest").version == 2
    assert registry.get_model("linear")["aliases"] == {"production": 2}
    registry.delete_alias("linear", "production")
    with pytest.raises(NotFound, match="no alias 'production'"):
        registry.get_version("linear@production")
    with pytest.raises(InvalidInput, match="reserved"):
        registry.set_alias("linear", "latest", 1)
    with pytest.raises(NotFound, match="no version 7"):
        registry.set_alias("linear", "staging", 7)


def test_references_parse_and_reject_clearly():
    assert parse_ref("modelyard://m@3") == ModelRef("m", version=3)
    assert parse_ref("m@prod") == ModelRef("m", alias="prod") and parse_ref("m") == ModelRef("m")
    assert is_registry_ref("modelyard://m@1") and not is_registry_ref("spec.yaml")
    for bad, message in [("m@", "nothing after"), ("m@0", "start at 1"), ("@1", "model name"),
                         ("m@a b", "neither a version"), ("a/b@1", "model name"),
                         # a number no database column holds, and a digit int() refuses: 422, never a 500
                         ("m@99999999999999999999", "go up to"), ("m@\u00b2", "neither a version")]:
        with pytest.raises(InvalidInput, match=message):
            parse_ref(bad)


def test_bad_registrations_say_what_is_wrong(workspace, model_dir, tmp_path):
    registry = ModelRegistry(workspace)
    files = upload(workspace, model_dir / "linear.onnx")
    with pytest.raises(InvalidInput, match="entry"):
        registry.create_version("m", files, "other.onnx", "onnx")
    with pytest.raises(InvalidInput, match="relative path"):
        registry.create_version("m", {"../evil.onnx": files["model.onnx"]}, "../evil.onnx", "onnx")
    with pytest.raises(InvalidInput, match="metrics.acc"):
        registry.create_version("m", files, "model.onnx", "onnx", metrics={"acc": float("nan")})
    with pytest.raises(NotFound, match="not found"):
        registry.create_version("m", {"model.onnx": "sha256:" + "0" * 64}, "model.onnx", "onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InvalidInput, match="ONNX"):
        registry.create_version("m", upload(workspace, junk), "model.onnx", "onnx")
    with pytest.raises(InvalidInput, match="preprocessing"):
        registry.create_version("m", files, "model.onnx", "onnx", preprocessing={"size": [8, 8]})
    assert registry.list_models() == []


def test_concurrent_registrations_get_distinct_numbers(workspace, model_dir):
    files = upload(workspace, model_dir / "linear.onnx")
    numbers, errors = [], []

    def go():
        try:
            numbers.append(ModelRegistry(workspace).create_version("race", files, "model.onnx", "onnx").version)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(numbers) == [1, 2, 3, 4]


def test_resolve_gives_verified_files_and_a_runnable_spec(workspace, model_dir, linear_weights):
    from modelyard.runtime.registry import get_backend

    register(workspace, model_dir / "linear.onnx")
    spec = resolve_spec(workspace, "modelyard://linear@1")
    assert spec.source_format == "onnx" and spec.inputs[0].shape == ["batch", 4]
    runner = get_backend("onnxruntime:cpu").load(spec.source())
    x = np.ones((2, 4), np.float32)
    weight, bias = linear_weights
    np.testing.assert_allclose(runner.infer({"x": x})["y"], x @ weight + bias, rtol=1e-6)
    resolved = resolve(workspace, "linear@1")
    resolved.path.chmod(0o644)
    resolved.path.write_bytes(b"tampered")  # a rotted cache is re-copied from the blob store, never loaded
    assert resolve(workspace, "linear@1").path.read_bytes() != b"tampered"
    blob = workspace.blobs.path_for(resolved.version.files["model.onnx"]["digest"])
    blob.chmod(0o644)
    blob.write_bytes(b"rotten")
    resolved.path.write_bytes(b"tampered again")
    with pytest.raises(IntegrityError):
        resolve(workspace, "linear@1")


def test_lineage_from_a_job(workspace, model_dir):
    from modelyard.jobs.queue import JobQueue

    job = JobQueue(workspace).submit("system.sleep", {"seconds": 0})
    lineage, produced = ModelRegistry(workspace).lineage_of_job(job.id)
    assert lineage["id"] == job.id and lineage["kind"] == "system.sleep" and produced is None
    version = register(workspace, model_dir / "linear.onnx", lineage={"job": lineage})
    assert version.lineage["job"]["id"] == job.id and job.id in version.card
    with pytest.raises(NotFound):
        ModelRegistry(workspace).lineage_of_job("job_missing")


def test_delete_rules(workspace, model_dir):
    from modelyard.deploy.services import DeploySpec, ServiceStore

    registry = ModelRegistry(workspace)
    register(workspace, model_dir / "linear.onnx")
    register(workspace, model_dir / "linear2.onnx")
    registry.set_alias("linear", "production", 2)
    ServiceStore(workspace).deploy(DeploySpec(model="linear@1", name="svc"))  # a row only: nothing is started
    with pytest.raises(Conflict, match="served by svc"):
        registry.delete_version("linear", 1)
    with pytest.raises(Conflict, match="served by svc"):
        registry.delete_model("linear")
    registry.delete_version("linear", 2)
    assert registry.get_model("linear")["aliases"] == {}
    ServiceStore(workspace).stop("svc")
    assert registry.delete_model("linear") == 1
    with pytest.raises(NotFound):
        registry.get_version("linear@1")


def test_a_reference_works_where_a_spec_file_would(sqlite_workspace, model_dir):
    from modelyard.registry.resolve import spec_from_ref

    register(sqlite_workspace, model_dir / "linear.onnx")
    spec = spec_from_ref("modelyard://linear@1", home=sqlite_workspace.home)
    assert spec.name == "linear@1" and spec.resolve(spec.onnx).is_file() and spec.outputs == ["y"]


def test_delete_is_refused_while_a_queued_or_running_job_uses_the_version(workspace, model_dir, tmp_path,
                                                                          monkeypatch, capsys):
    """A queued (or running) job that names the version, directly or through an alias or "latest", keeps it: 409
    naming the job, in the library, over REST and in the CLI; once the job is cancelled the delete goes through."""
    from modelyard.cli.main import main
    from modelyard.jobs.queue import JobQueue

    registry = ModelRegistry(workspace)
    register(workspace, model_dir / "linear.onnx")
    register(workspace, model_dir / "linear2.onnx")
    registry.set_alias("linear", "production", 1)
    (tmp_path / "rows.csv").write_text("a,b,c,d\n1,2,3,4\n")
    queue = JobQueue(workspace)
    by_alias = queue.submit("batch.predict", {"model": "linear@production", "input": str(tmp_path / "rows.csv")})
    with pytest.raises(Conflict, match=f"linear@1 is used by queued or running job {by_alias.id} \\(batch.predict\\)"):
        registry.delete_version("linear", 1)
    with pytest.raises(Conflict, match=f"model 'linear' is used by queued or running job {by_alias.id}"):
        registry.delete_model("linear")
    registry.delete_version("linear", 2)  # no job names it: goes
    queue.cancel(by_alias.id)
    latest = queue.submit("batch.predict", {"model": "linear", "input": str(tmp_path / "rows.csv")})

    monkeypatch.setenv("MODELYARD_HOME", str(workspace.settings.home))
    if workspace.settings.db_url:  # the PostgreSQL run: the CLI opens the same database
        monkeypatch.setenv("MODELYARD_DB_URL", workspace.settings.db_url)
    capsys.readouterr()
    assert main(["models", "delete", "linear@1", "--yes"]) == 1  # the SDK's DELETE answered 409
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert f"error: linear@1 is used by queued or running job {latest.id} (batch.predict)" in stderr
    assert registry.get_version("linear@1").version == 1
    queue.cancel(latest.id)
    assert registry.delete_model("linear") == 1
