"""Migrations: upload a project (.zip/.tar.gz) for readiness analysis, read readiness, effort and findings by file
with the code around each finding, run a migration pipeline from an uploaded project with its MIGRATION.yaml, read
the migration report, the test report and the acceptance checklist, and accept the report.

Projects travel as the API's job specs want them: uploaded blobs named in the spec's ``files`` (the archive itself
for an analysis; its files, unpacked with the migration tools' safe extractor, for a pipeline run), and the jobs are
submitted with the signed-in user's role, so what needs the admin role (code outside the zoo, ``python_path``)
needs it here too. REST twins: ``POST /api/v1/blobs`` + ``POST /api/v1/jobs`` (``migrate.analyze``,
``migrate.run``), ``GET /api/v1/jobs/{id}``, ``GET /api/v1/migrations/{id}/report``,
``POST /api/v1/migrations/{id}/accept``."""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.server.console.web import Paging, Viewer, action, page, redirect, render

router = APIRouter()
ARCHIVES = (".zip", ".tar.gz", ".tgz", ".tar")
CONTEXT_LINES = 3
MAX_FINDINGS_SHOWN = 300
MAX_CONTEXT_ARCHIVE = 64 * 1024 * 1024
MAX_CONTEXT_FILE = 2 * 1024 * 1024


def _queue(request: Request):
    from modelyard.jobs.queue import JobQueue

    return JobQueue(request.app.state.workspace)


def _archive_name(upload: UploadFile) -> str:
    name = Path(upload.filename or "").name
    if not name.lower().endswith(ARCHIVES):
        raise InvalidInput(f"{name or 'the upload'}: upload a project as .zip, .tar.gz or .tar")
    return name


def _project_files(request: Request, upload: UploadFile, name: str) -> dict[str, str]:
    """Unpack an uploaded project safely and store each of its files as a blob: ``relative name -> digest``."""
    from modelyard.migrate.code.sources import Limits, extract_archive

    blobs = request.app.state.workspace.blobs
    with tempfile.TemporaryDirectory(prefix="modelyard-console-") as scratch:
        archive = Path(scratch) / name
        with open(archive, "wb") as handle:
            while chunk := upload.file.read(1024 * 1024):
                handle.write(chunk)
        folder = Path(scratch) / "project"
        folder.mkdir()
        try:
            extract_archive(archive, folder, Limits())
        except (OSError, ValueError, zipfile.BadZipFile, tarfile.TarError) as exc:
            raise InvalidInput(f"{name}: not a readable archive ({exc})") from exc
        return {path.relative_to(folder).as_posix(): "sha256:" + blobs.put_file(path).digest
                for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}


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
    name = _archive_name(project)
    blob = request.app.state.workspace.blobs.put_stream(project.file)
    job = _queue(request).submit("migrate.analyze", {"path": name, "target": target, "formats": ["json", "html"],
                                                     "files": {name: "sha256:" + blob.digest}},
                                 owner=viewer.name, caller=viewer.caller)
    return redirect(f"/migrations/analysis/{job.id}", f"Analysing {name} for target {target}.")


class _ArchiveSource:
    """Reads the analysed archive's members (from the blob store, never unpacked) to show code around findings."""

    def __init__(self, workspace, job):
        self.lines: dict[str, list[str] | None] = {}
        self.archive = None
        digest = (job.spec.get("files") or {}).get(job.spec.get("path", ""))
        if not digest or workspace.blobs.info(digest).size > MAX_CONTEXT_ARCHIVE:
            return
        data = io.BytesIO(workspace.blobs.read_bytes(digest))
        try:
            # an in-memory archive, read for this page only: nothing to close on disk
            self.archive = zipfile.ZipFile(data) if zipfile.is_zipfile(data) else tarfile.open(fileobj=data)  # noqa: SIM115
        except (OSError, zipfile.BadZipFile, tarfile.TarError):
            self.archive = None

    def _read(self, name: str) -> bytes | None:
        wanted = PurePosixPath(name).as_posix()
        if isinstance(self.archive, zipfile.ZipFile):
            info = next((i for i in self.archive.infolist() if PurePosixPath(i.filename).as_posix() == wanted), None)
            if info is None or info.file_size > MAX_CONTEXT_FILE:
                return None
            return self.archive.read(info)
        member = next((m for m in self.archive.getmembers() if PurePosixPath(m.name).as_posix() == wanted), None)
        if member is None or not member.isfile() or member.size > MAX_CONTEXT_FILE:
            return None
        return self.archive.extractfile(member).read()

    def context(self, finding: dict) -> list[tuple[int, str, bool]]:
        line, end = finding["line"], finding.get("end_line", finding["line"])
        if self.archive is None:
            return [(line, finding.get("snippet") or "", True)]
        if finding["file"] not in self.lines:
            data = self._read(finding["file"])
            self.lines[finding["file"]] = data.decode("utf-8", errors="replace").splitlines() if data else None
        lines = self.lines[finding["file"]]
        if not lines:
            return [(line, finding.get("snippet") or "", True)]
        first, last = max(1, line - CONTEXT_LINES), min(len(lines), end + CONTEXT_LINES)
        return [(n, lines[n - 1], line <= n <= end) for n in range(first, last + 1)]


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
        source = _ArchiveSource(request.app.state.workspace, job)
        status = request.query_params.get("status") or None
        for finding in report["findings"]:
            if status and finding["status"] != status:
                continue
            if sum(len(v) for v in by_file.values()) >= MAX_FINDINGS_SHOWN:
                break
            by_file.setdefault(finding["file"], []).append({**finding, "context": source.context(finding)})
    return render(request, "migration_analysis.html", viewer, title=f"Analysis {job_id}", nav="migrations", job=job,
                  report=report, by_file=by_file)


@router.post("/migrations/run")
def run_pipeline(request: Request, project: UploadFile = File(...), migration: str = Form("migration.yaml"),
                 viewer: Viewer = Depends(action())):
    name = _archive_name(project)
    files = _project_files(request, project, name)
    wanted = migration.strip()
    if wanted not in files:
        found = [f for f in files if f.endswith((".yaml", ".yml"))][:10]
        raise InvalidInput(f"the archive has no {wanted!r}" + (f"; it has {', '.join(found)}" if found else ""))
    job = _queue(request).submit("migrate.run", {"migration": wanted, "files": files}, owner=viewer.name,
                                 caller=viewer.caller)
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
