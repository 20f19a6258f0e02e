"""Job kinds ``migrate.analyze`` and ``migrate.apply``: the same library calls as the CLI, run as durable jobs.

Reports are written to the job's own folder and named in the result, so the API, SDK and console can fetch them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.jobkind import JobContext, JobKind

Target = Literal["any", "npu", "cpu", "xpu", "mps", "rocm"]
Format = Literal["json", "md", "html", "csv"]


class AnalyzeSpec(BaseModel):
    """Spec of ``migrate.analyze``.

    Args:
        path: project folder, file or .zip/.tar.gz archive on the worker's file system.
        target: migration target. Default ``any``.
        formats: reports to write into the job folder. Default json and html.
        rules: extra rule files or folders.
        max_file_mb: files above this size are skipped with a note. Default 5.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    target: Target = "any"
    formats: list[Format] = Field(default_factory=lambda: ["json", "html"])
    rules: list[str] = Field(default_factory=list)
    max_file_mb: float = Field(default=5.0, gt=0)


class ApplySpec(BaseModel):
    """Spec of ``migrate.apply``.

    Args:
        path: project folder, file or archive.
        target: migration target.
        out: folder for the migrated copy; default ``<job folder>/migrated``. Ignored with ``in_place``.
        in_place: rewrite ``path`` itself (atomically per file, with backups).
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


def _limits(max_file_mb: float):
    from modelyard.migrate.code.sources import Limits

    return Limits(max_file_bytes=int(max_file_mb * 1024 * 1024))


def run_analyze(spec: AnalyzeSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.code.analyze import analyze_path
    from modelyard.migrate.code.report import render

    ctx.log(f"analysing {spec.path} for target {spec.target}")
    analysis = analyze_path(spec.path, spec.target, extra_rules=tuple(spec.rules), limits=_limits(spec.max_file_mb),
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

    out = None
    if not spec.in_place and not spec.dry_run:
        out = spec.out or str(Path(ctx.workdir) / "migrated")
    ctx.log(f"migrating {spec.path} to {spec.target} ({'in place' if spec.in_place else out or 'dry run'})")
    result = apply_migration(spec.path, spec.target, out=out, in_place=spec.in_place, dry_run=spec.dry_run,
                             extra_rules=tuple(spec.rules), limits=_limits(spec.max_file_mb), progress=ctx.progress)
    if spec.dry_run:
        workdir = Path(ctx.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "migration.diff").write_text(result.diff, encoding="utf-8")
    ctx.log(str(result))
    return result.to_dict()


ANALYZE = JobKind("migrate.analyze", AnalyzeSpec, run_analyze, idempotent=True,
                  description="Scan GPU PyTorch code for migration readiness (findings, score, effort).")
APPLY = JobKind("migrate.apply", ApplySpec, run_apply, idempotent=False,
                description="Rewrite GPU PyTorch code for another accelerator (libcst), with change list and diff.")
