"""The OpenAPI document is a contract the API keeps: schemathesis over every operation, in-process.

Each operation gets a few generated requests with random values and a few with the ids of real objects (a dataset,
a model, a run, a job seeded beforehand), sent with an admin token; every answer must be a status the document
declares for that operation, with a body that fits the declared schema, and never a 5xx. Bounded: a handful of
examples per operation, no shrinking database, no deadline per example (the 2-core CI machine is slow, not wrong).
"""

from __future__ import annotations

import re

import pytest
from test_routes_models import linear_onnx

from modelyard.core.settings import Settings
from modelyard.server.app import create_app
from modelyard.store.tokens import TokenStore
from modelyard.store.workspace import Workspace

RANDOM_EXAMPLES = 6
SEEDED_EXAMPLES = 4


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A workspace with one of everything an operation can name, and an admin token."""
    from modelyard.data.datasets import DatasetStore
    from modelyard.data.samples import write_tabular_sample
    from modelyard.deploy.services import DeploySpec, ServiceStore
    from modelyard.jobs.queue import JobQueue
    from modelyard.registry.versions import ModelRegistry
    from modelyard.train.tracking import RunStore

    folder = tmp_path_factory.mktemp("contract")
    workspace = Workspace.open(Settings.load(folder / "home", max_body_bytes=256 * 1024))
    token = TokenStore(workspace.engine).create("contract", "admin")[1]
    dataset = DatasetStore(workspace).import_path(write_tabular_sample("iris", folder / "iris.csv"), "iris")
    model_file = linear_onnx(folder / "m.onnx")
    digest = "sha256:" + workspace.blobs.put_file(model_file).digest
    registry = ModelRegistry(workspace)
    version = registry.create_version("mm", {"model.onnx": digest}, "model.onnx", "onnx")
    registry.set_alias("mm", "production", version.version)
    runs = RunStore(workspace)
    run = runs.create("r1", "default", {"lr": 0.1}, {}, dataset.ref, None, created_by="contract")
    runs.log_metrics(run.id, [{"key": "loss", "value": 0.5, "step": 0}])
    queue = JobQueue(workspace)
    job = queue.submit("system.sleep", {"seconds": 0}, owner="contract")
    queue.cancel(job.id)  # finished, so a generated ?follow=true ends at once (no worker runs here)
    services = ServiceStore(workspace)
    services.deploy(DeploySpec(model="mm@1", name="svc"), created_by="contract")
    services.stop("svc")
    ids = {"name": "mm", "selector": "1", "version": "1", "alias": "production", "run_id": run.id,
           "job_id": job.id, "digest": digest, "token_id": "tok_missing"}
    dataset_ids = {"name": "iris", "version": "1"}
    service_ids = {"name": "svc"}
    yield workspace, token, ids, {"/api/v1/datasets": dataset_ids, "/api/v1/services": service_ids}
    workspace.close()


def _seeded_path_parameters(path: str, ids: dict, by_prefix: dict) -> dict:
    names = next((names for prefix, names in by_prefix.items() if path.startswith(prefix)), ids)
    return {key: value for key, value in names.items() if "{" + key + "}" in path}


def _destructive_last(operation) -> tuple:
    """Reads and writes first; then what ends an object's life (finish, cancel, stop); deletes last, the deepest
    path first (a version's alias before the version, the version before the model)."""
    ends = operation.path.rsplit("/", 1)[-1] in ("finish", "cancel", "stop")
    if operation.method.upper() == "DELETE":
        return (2, -operation.path.count("/"), operation.path)
    return (1 if ends else 0, 0, operation.path, operation.method)


@pytest.mark.slow
def test_every_operation_keeps_the_documented_contract(seeded, monkeypatch):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    workspace, token, ids, by_prefix = seeded
    # the API's answers are under test, not the supervisor: starting a service must not spawn processes here
    monkeypatch.setattr("modelyard.deploy.supervisor.ensure_running", lambda *args, **kwargs: None)
    app = create_app(workspace)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    def no_server_error(ctx, response, case):
        # 503 unavailable is a documented answer (a stopped service's predict and metrics), not a server fault
        if response.status_code == 503 and (response.json().get("error") or {}).get("code") == "unavailable":
            return None
        return not_a_server_error(ctx, response, case)

    checks = [no_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_destructive_last)
    assert len(operations) >= 51

    for operation in operations:
        seeded_params = _seeded_path_parameters(operation.path, ids, by_prefix)
        if operation.path.startswith("/api/v1/"):
            names = re.findall(r"{(\w+)}", operation.path)
            anonymous = operation.Case(path_parameters={n: seeded_params.get(n, "x") for n in names} or None)
            response = anonymous.call()
            if response.status_code != 401:
                failures.append(f"{operation.method.upper()} {operation.path} without a token: "
                                f"{response.status_code} {response.text[:200]}")
        runs = [(RANDOM_EXAMPLES, None)] + ([(SEEDED_EXAMPLES, seeded_params)] if seeded_params else [])
        for examples, path_parameters in runs:

            @given(case=operation.as_strategy(path_parameters=path_parameters))
            @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate))
            def exercise(case):
                response = case.call(headers=headers)
                case.validate_response(response, checks=checks, headers=headers)

            try:
                exercise()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - one run reports every broken operation
                failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
