"""Migrations: upload a project (.zip/.tar.gz) for readiness analysis, read readiness, effort and findings by file
with the code around each finding, run a migration pipeline from an uploaded project with its MIGRATION.yaml, read
the migration report, the test report and the acceptance checklist, and accept the report.

Uploads are extracted with the migration tools' own safe extractor (names checked before anything is written, links
and oversized members skipped, total bytes bounded) into ``<home>/uploads/<id>``; the jobs then read that folder.
REST twins: ``POST /api/v1/jobs`` (``migrate.analyze``, ``migrate.run``), ``GET /api/v1/jobs/{id}``,
``GET /api/v1/migrations/{id}/report``, ``POST /api/v1/migrations/{id}/accept``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from modelyard.core.errors import InvalidInput, ModelyardError, NotFound
from modelyard.core.ids import new_id
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, render

router = APIRouter()
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")
CONTEXT_LINES = 3
MAX_FINDINGS_SHOWN = 300


def _queue(request: Request):
    from modelyard.jobs.queue import JobQueue

    return JobQueue(request.app.state.workspace)


def _uploads(request: Request) -> Path:
    return request.app.state.workspace.home / "uploads"


def _extract_upload(request: Request, upload: UploadFile) -> Path:
    """Save and safely extract an uploaded project archive; returns the folder (nothing is left on failure)."""
    from modelyard.migrate.code.sources import Limits, extract_archive

    name = Path(upload.filename or "").name
    if not name.lower().endswith(ARCHIVES):
        raise InvalidInput(f"{name or 'the upload'}: upload a project as .zip, .tar.gz or .tar")
    folder = _uploads(request) / new_id("upl")
    archive = folder.with_name(folder.name + "-" + name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(archive, "wb") as handle:
            shutil.copyfileobj(upload.file, handle)
        folder.mkdir()
        extract_archive(archive, folder, Limits())
    except (ModelyardError, OSError, ValueError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, ModelyardError):
            raise
        raise InvalidInput(f"{name}: not a readable archive ({exc})") from exc
    finally:
        archive.unlink(missing_ok=True)
    return folder


@router.get("/migrations")
def migrations_page(request: Request, viewer: Viewer = Depends(page())):
    from modelyard.migrate.pipeline.acceptance import list_acceptances

    paging = Paging.from_request(request, ("created", "status"), "created", per=20)
    queue = _queue(request)
    analyses, analyses_total = queue.browse(kind="migrate.analyze", sort=paging.sort, desc=paging.desc,
                                            offset=paging.offset, limit=paging.per)
    runs, _ = queue.browse(kind="migrate.run", limit=20)
    accepted = {a["job_id"]: a for a in list_acceptances(request.app.state.workspace, 1000)}
    return render(request, "migrations.html", viewer, title="Migrations", analyses=analyses, total=analyses_total,
                  paging=paging, runs=runs, accepted=accepted)


@router.post("/migrations/analyze")
def analyze(request: Request, project: UploadFile = File(...), target: str = Form("any"),
            viewer: Viewer = Depends(action())):
    folder = _extract_upload(request, project)
    try:
        job = _queue(request).submit("migrate.analyze", {"path": str(folder), "target": target,
                                                         "formats": ["json", "html"]}, owner=viewer.name)
    except ModelyardError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return redirect(f"/migrations/analysis/{job.id}", f"Analysing {project.filename} for target {target}.")


def _context(root: Path | None, finding: dict, cache: dict) -> list[tuple[int, str, bool]]:
    if root is None:
        return [(finding["line"], finding.get("snippet") or "", True)]
    path = (root / finding["file"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return [(finding["line"], finding.get("snippet") or "", True)]
    if path not in cache:
        cache[path] = path.read_text(encoding="utf-8", errors="replace").splitlines()
    lines = cache[path]
    start, end = max(1, finding["line"] - CONTEXT_LINES), min(len(lines), finding.get("end_line", finding["line"])
                                                              + CONTEXT_LINES)
    hit = range(finding["line"], finding.get("end_line", finding["line"]) + 1)
    return [(n, lines[n - 1], n in hit) for n in range(start, end + 1)]


@router.get("/migrations/analysis/{job_id}")
def analysis_page(request: Request, job_id: str, viewer: Viewer = Depends(page())):
    job = _queue(request).get(job_id)
    if job.kind != "migrate.analyze":
        raise NotFound(f"job {job_id} is a {job.kind} job, not an analysis")
    report = None
    by_file: dict[str, list] = {}
    if job.status == "succeeded" and job.result:
        path = Path((job.result.get("reports") or {}).get("json", ""))
        if path.is_file():
            report = json.loads(path.read_text(encoding="utf-8"))
    if report:
        # only an uploaded project (inside the workspace) is read for context: a job spec cannot make the console
        # show any other file on the server
        root = Path(job.spec.get("path", "")).resolve()
        root = root if root.is_dir() and root.is_relative_to(_uploads(request).resolve()) else None
        cache: dict = {}
        status = request.query_params.get("status") or None
        for finding in report["findings"]:
            if status and finding["status"] != status:
                continue
            if sum(len(v) for v in by_file.values()) >= MAX_FINDINGS_SHOWN:
                break
            by_file.setdefault(finding["file"], []).append({**finding, "context": _context(root, finding, cache)})
    return render(request, "migration_analysis.html", viewer, title=f"Analysis {job_id}", nav="migrations", job=job,
                  report=report, by_file=by_file)


@router.post("/migrations/run")
def run_pipeline(request: Request, project: UploadFile = File(...), migration: str = Form("migration.yaml"),
                 viewer: Viewer = Depends(action())):
    folder = _extract_upload(request, project)
    config = (folder / migration.strip()).resolve()
    if not config.is_relative_to(folder.resolve()) or not config.is_file():
        found = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yaml"))[:10]
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidInput(f"the archive has no {migration!r}" + (f"; it has {', '.join(found)}" if found else ""))
    try:
        job = _queue(request).submit("migrate.run", {"migration": str(config)}, owner=viewer.name)
    except ModelyardError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return redirect(f"/migrations/run/{job.id}", f"Migration pipeline {job.id} started.")


@router.get("/migrations/run/{job_id}")
def run_page(request: Request, job_id: str, viewer: Viewer = Depends(page())):
    from modelyard.migrate.pipeline.acceptance import acceptance_of, migration_report

    job = _queue(request).get(job_id)
    if job.kind != "migrate.run":
        raise NotFound(f"job {job_id} is a {job.kind} job, not a migration run")
    report = None
    if job.status == "succeeded":
        report = migration_report(request.app.state.workspace, job_id)[2]
    return render(request, "migration_run.html", viewer, title=f"Migration {job_id}", nav="migrations", job=job,
                  report=report, acceptance=acceptance_of(request.app.state.workspace, job_id))


@router.post("/migrations/run/{job_id}/accept")
def accept(request: Request, job_id: str, note: str = Form(""), viewer: Viewer = Depends(action())):
    from modelyard.migrate.pipeline.acceptance import accept_report

    record = accept_report(request.app.state.workspace, job_id, viewer.name, note)
    return redirect(f"/migrations/run/{job_id}", f"Accepted by {record['accepted_by']}: report "
                                                 f"{record['report_digest'][:19]}…")
