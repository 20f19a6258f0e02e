"""Job kinds ``migrate.analyze`` and ``migrate.apply``: the same library calls as the CLI, run as durable jobs.

Reports are written to the job's own folder and named in the result, so the API, SDK and console can fetch them.
The project arrives as uploaded files (``files``: an archive, or a folder's files) and ``path`` names it among them;
the migrated copy is written into the job's folder and stored as a zip blob (``result.download``). Naming a server
path (``path``, ``rules``, ``out``) needs the admin role (``modelyard.migrate.job_inputs``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.jobkind import JobContext, JobKind
from modelyard.migrate.job_inputs import (
    FILES_FIELD,
    authorize_files,
    authorize_paths,
    materialize_inputs,
    output_path,
    resolve,
    zip_to_blob,
)

Target = Literal["any", "npu", "cpu", "xpu", "mps", "rocm"]
Format = Literal["json", "md", "html", "csv"]


class AnalyzeSpec(BaseModel):
    """Spec of ``migrate.analyze``.

    Args:
        path: project folder, file or .zip/.tar.gz archive: a name among ``files`` (a folder: the common prefix of
            its files' names), or (admin) a path on the server.
        target: migration target. Default ``any``.
        formats: reports to write into the job folder. Default json and html.
        rules: extra rule files or folders (names among ``files``).
        max_file_mb: files above this size are skipped with a note. Default 5.
        files: uploaded files, ``relative name -> sha256 digest``.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    target: Target = "any"
    formats: list[Format] = Field(default_factory=lambda: ["json", "html"])
    rules: list[str] = Field(default_factory=list)
    max_file_mb: float = Field(default=5.0, gt=0)
    files: dict[str, str] = FILES_FIELD


class ApplySpec(BaseModel):
    """Spec of ``migrate.apply``.

    Args:
        path: project folder, file or archive (a name among ``files``, or an admin's server path).
        target: migration target.
        out: (admin) a server folder for the migrated copy; default ``<job folder>/migrated``, returned as a zip blob.
            Ignored with ``in_place``.
        in_place: rewrite ``path`` itself (atomically per file, with backups): the job's copy of uploaded files.
        dry_run: compute the diff only.
        rules: extra rule files or folders.
        max_file_mb: size limit per file. Default 5.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    target: Target
    out: str | None = None
    in_place: bool = False
    dry_run: bool = False
    rules: list[str] = Field(default_factory=list)
    max_file_mb: float = Field(default=5.0, gt=0)
    files: dict[str, str] = FILES_FIELD


def _authorize_analyze(spec: AnalyzeSpec, caller, workspace) -> None:
    authorize_files(spec.files, workspace)
    authorize_paths(spec, caller, "path", "rules")


def _authorize_apply(spec: ApplySpec, caller, workspace) -> None:
    authorize_files(spec.files, workspace)
    authorize_paths(spec, caller, "path", "rules", "out")


def _limits(max_file_mb: float):
    from modelyard.migrate.code.sources import Limits

    return Limits(max_file_bytes=int(max_file_mb * 1024 * 1024))


def run_analyze(spec: AnalyzeSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.code.analyze import analyze_path
    from modelyard.migrate.code.report import render

    inputs = materialize_inputs(spec.files, ctx)
    ctx.log(f"analysing {spec.path} for target {spec.target}")
    analysis = analyze_path(resolve(spec.path, inputs), spec.target,
                            extra_rules=tuple(resolve(r, inputs) for r in spec.rules), limits=_limits(spec.max_file_mb),
                            progress=ctx.progress, cancelled=ctx.cancelled)
    workdir = Path(ctx.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reports = {}
    for fmt in dict.fromkeys(spec.formats):
        target = workdir / f"analysis.{fmt}"
        target.write_text(render(analysis, fmt), encoding="utf-8")
        reports[fmt] = str(target)
    ctx.log(str(analysis))
    return {"schema": "modelyard.analysis-job/1", "summary": analysis.summary(), "reports": reports,
            "ready": bool(analysis)}


def run_apply(spec: ApplySpec, ctx: JobContext) -> dict:
    from modelyard.migrate.code.apply import apply_migration

    inputs = materialize_inputs(spec.files, ctx)
    source = resolve(spec.path, inputs)
    out = None
    if not spec.in_place and not spec.dry_run:
        out = str(output_path(spec.out, ctx, default="migrated"))
    where = "in place" if spec.in_place else "dry run" if spec.dry_run else spec.out or "the job folder"
    ctx.log(f"migrating {spec.path} to {spec.target} ({where})")
    result = apply_migration(source, spec.target, out=out, in_place=spec.in_place, dry_run=spec.dry_run,
                             extra_rules=tuple(resolve(r, inputs) for r in spec.rules),
                             limits=_limits(spec.max_file_mb), progress=ctx.progress)
    if spec.dry_run:
        workdir = Path(ctx.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "migration.diff").write_text(result.diff, encoding="utf-8")
    ctx.log(str(result))
    payload = result.to_dict()
    produced = Path(out) if out else (Path(source) if spec.in_place else None)
    if produced is not None and produced.is_dir() and produced.resolve().is_relative_to(Path(ctx.workdir).resolve()):
        payload["download"] = zip_to_blob(produced, ctx)
    return payload


ANALYZE = JobKind("migrate.analyze", AnalyzeSpec, run_analyze, idempotent=True, authorize=_authorize_analyze,
                  description="Scan GPU PyTorch code for migration readiness (findings, score, effort).")
APPLY = JobKind("migrate.apply", ApplySpec, run_apply, idempotent=False, authorize=_authorize_apply,
                description="Rewrite GPU PyTorch code for another accelerator (libcst), with change list and diff.")
