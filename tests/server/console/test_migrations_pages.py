"""Migrations: an uploaded project is analysed (findings shown in their code), unsafe archives are refused, and a
migration report is accepted once, recorded with who, when and its digest (console and REST twin)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import sqlalchemy as sa
from console_support import csrf_of, run_inline

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gpu_project"


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*.py")):
            zf.write(path, f"gpu_project/{path.relative_to(folder)}")
    return buffer.getvalue()


def test_uploaded_project_is_analysed_with_findings_in_context(as_role, sqlite_workspace):
    from modelyard.jobs.queue import JobQueue

    editor = as_role("editor")
    page = editor.get("/migrations")
    answer = editor.post("/migrations/analyze", data={"csrf": csrf_of(page.text), "target": "any"},
                         files={"project": ("proj.zip", _zip(EXAMPLE), "application/zip")}, follow_redirects=False)
    assert answer.status_code == 303
    job_id = answer.headers["location"].split("?")[0].rsplit("/", 1)[-1]
    job = JobQueue(sqlite_workspace).get(job_id)
    # the API's spec: the archive travels as an uploaded blob named in files, not as a server path
    assert job.kind == "migrate.analyze" and job.spec["path"] == "proj.zip"
    assert sqlite_workspace.blobs.read_bytes(job.spec["files"]["proj.zip"]) == _zip(EXAMPLE)
    run_inline(sqlite_workspace, job_id)
    report = editor.get(f"/migrations/analysis/{job_id}")
    assert report.status_code == 200 and "readiness" in report.text and "/100" in report.text
    assert " ▶ " in report.text and "cuda" in report.text
    assert report.text.count("   ") > 10  # context lines around the findings, read from the archive
    manual = editor.get(f"/migrations/analysis/{job_id}?status=manual")
    assert "<b>manual</b>" in manual.text and "<b>auto</b>" not in manual.text
    assert job_id in editor.get("/migrations").text


def test_unsafe_or_wrong_uploads_are_refused_and_queue_nothing(as_role, sqlite_workspace):
    from modelyard.jobs.queue import JobQueue

    editor = as_role("editor")
    token = csrf_of(editor.get("/migrations").text)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.py", "import torch\n")
    refused = editor.post("/migrations/run", data={"csrf": token},
                          files={"project": ("evil.zip", evil.getvalue(), "application/zip")})
    assert refused.status_code in (400, 422) and "Traceback" not in refused.text
    wrong = editor.post("/migrations/analyze", data={"csrf": token},
                        files={"project": ("notes.txt", b"hello", "text/plain")})
    assert wrong.status_code == 422 and "upload a project as .zip" in wrong.text
    no_yaml = editor.post("/migrations/run", data={"csrf": token, "migration": "migration.yaml"},
                          files={"project": ("p.zip", _zip(EXAMPLE), "application/zip")})
    assert no_yaml.status_code == 422 and "has no &#39;migration.yaml&#39;" in no_yaml.text
    assert JobQueue(sqlite_workspace).list()[0] == []


def test_an_editor_cannot_run_uploaded_code_in_a_pipeline(as_role, sqlite_workspace, tmp_path):
    """python_path and an entrypoint outside the zoo are code: the API needs admin for them, so does the console."""
    from modelyard.jobs.queue import JobQueue

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("migration.yaml", "name: x\nmodel: spec.yaml\npython_path: [.]\n")
        zf.writestr("spec.yaml", "entrypoint: mymodel:build\ninputs: [{name: x, shape: [1, 4]}]\n")
        zf.writestr("mymodel.py", "def build():\n    raise SystemExit\n")
    editor = as_role("editor")
    answer = editor.post("/migrations/run", data={"csrf": csrf_of(editor.get("/migrations").text)},
                         files={"project": ("p.zip", buffer.getvalue(), "application/zip")})
    assert answer.status_code == 403 and "admin" in answer.text
    assert JobQueue(sqlite_workspace).list()[0] == []


def _finished_run(workspace, tmp_path, accepted: bool) -> str:
    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    job = JobQueue(workspace).submit("migrate.run", {"migration": str(tmp_path / "migration.yaml")})
    report = tmp_path / f"report-{job.id}.json"
    report.write_text(json.dumps({"name": "gpu-project", "accepted": accepted, "headline": {"speedup": 1.7},
                                  "acceptance": [{"goal": "min_speedup", "target": 1.5, "measured": 1.7,
                                                  "passed": accepted, "note": ""}],
                                  "migration_report": {"source": "src", "code_target": "any",
                                                       "readiness": {"before": {"readiness_score": 23},
                                                                     "after": {"readiness_score": 90}},
                                                       "changes": []},
                                  "test_report": {"precision": {"verdict": "pass", "reference": "torch:cpu",
                                                                "target": "openvino:cpu", "samples": 16},
                                                  "chosen_configuration": None}, "notes": []}))
    with workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(
            status="succeeded", result={"reports": {"json": str(report)}, "accepted": accepted}))
    return job.id


def test_accepting_a_report_records_who_when_and_its_digest(as_role, sqlite_workspace, tmp_path):
    job_id = _finished_run(sqlite_workspace, tmp_path, accepted=True)
    viewer = as_role("viewer")
    page = viewer.get(f"/migrations/run/{job_id}")
    assert "Accept report" not in page.text and "all goals met" in page.text
    assert viewer.post(f"/migrations/run/{job_id}/accept", data={"csrf": csrf_of(page.text)}).status_code == 403
    editor = as_role("editor")
    page = editor.get(f"/migrations/run/{job_id}")
    answer = editor.post(f"/migrations/run/{job_id}/accept", data={"csrf": csrf_of(page.text)},
                         follow_redirects=True)
    digest = "sha256:" + hashlib.sha256((tmp_path / f"report-{job_id}.json").read_bytes()).hexdigest()
    assert answer.status_code == 200 and "by <b>editor-user</b>" in answer.text and digest in answer.text
    again = editor.post(f"/migrations/run/{job_id}/accept", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409 and "already accepted by editor-user" in again.text
    record = editor.get(f"/api/v1/migrations/{job_id}/acceptance",
                        headers={"Authorization": f"Bearer {editor.secret}"}).json()
    assert record["report_digest"] == digest and record["digest_matches"] and record["checklist_passed"]
    changed = tmp_path / f"report-{job_id}.json"
    changed.write_text(changed.read_text().replace('"speedup": 1.7', '"speedup": 3.0'))
    assert "report.json changed since" in editor.get(f"/migrations/run/{job_id}").text


def test_a_failed_checklist_needs_a_note_to_be_accepted(as_role, sqlite_workspace, tmp_path):
    job_id = _finished_run(sqlite_workspace, tmp_path, accepted=False)
    editor = as_role("editor")
    auth = {"Authorization": f"Bearer {editor.secret}"}
    refused = editor.post(f"/api/v1/migrations/{job_id}/accept", json={}, headers=auth)
    assert refused.status_code == 409 and "min_speedup" in refused.json()["error"]["message"]
    made = editor.post(f"/api/v1/migrations/{job_id}/accept", json={"note": "1.4x is enough for us"}, headers=auth)
    assert made.status_code == 201 and made.json()["checklist_passed"] is False
    assert made.json()["accepted_by"] == "editor-user"
