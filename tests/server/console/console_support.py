"""Helpers the console tests share (a plain module, so no conftest.py can shadow it)."""

from __future__ import annotations

import re

from support import matmul_onnx

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client, secret: str):
    page = client.get("/login")
    answer = client.post("/login", data={"token": secret, "csrf": csrf_of(page.text), "next": "/"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def linear_onnx(path):
    """A tiny ONNX model ``y = x @ I`` on ``x [batch, 2] float32`` (milliseconds, no torch)."""
    return matmul_onnx(path)


def register_linear(workspace, tmp_path, name: str, **extra):
    from modelyard.registry.versions import ModelRegistry

    path = linear_onnx(tmp_path / f"{name}.onnx")
    digest = workspace.blobs.put_file(path).digest
    return ModelRegistry(workspace).create_version(name, {"model.onnx": "sha256:" + digest}, "model.onnx", "onnx",
                                                   **extra)


def run_inline(workspace, job_id: str) -> dict:
    """Run a queued job in this process and store its result as the worker would."""
    import sqlalchemy as sa

    from modelyard.core import plugins
    from modelyard.core.jobkind import LocalJobContext
    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    queue = JobQueue(workspace)
    job = queue.get(job_id)
    kind = plugins.load_job_kind(job.kind)
    workdir = queue.job_dir(job_id) / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    result = kind.run(kind.validate_spec(job.spec), LocalJobContext(home=workspace.home, workdir=workdir,
                                                                     job_id=job_id))
    with workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(status="succeeded", progress=1.0,
                                                                       result=result))
    return result
