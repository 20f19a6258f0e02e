"""Job kinds ``migrate.benchmark``, ``migrate.optimize`` and ``migrate.run``: the CLI's library calls as durable
jobs, writing into the job's folder and returning the JSON the CLI prints with ``--json``.

``migrate.run`` keeps its state in ``out`` (default: the job folder), so a retried or resubmitted job with the
same ``out`` resumes at the phase that did not finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.jobkind import JobContext, JobKind
from modelyard.migrate.job_inputs import (
    FILES_FIELD,
    materialize_inputs,
    model_spec_in,
    output_path,
    resolve,
    zip_to_blob,
)
from modelyard.migrate.model.jobs import action_spec_of, model_job_authorizer, progress_reporter
from modelyard.migrate.model.specs import BenchmarkSpec
from modelyard.migrate.optimize.spec import OptimizeSpec


class BenchmarkJobSpec(BenchmarkSpec):
    """``BenchmarkSpec``'s fields plus spec (path or inline ModelSpec) and files."""

    spec: str | dict[str, Any]
    files: dict[str, str] = FILES_FIELD


def run_benchmark(job: BenchmarkJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.bench import run_benchmark as benchmark

    inputs = materialize_inputs(job.files, ctx)
    result = benchmark(model_spec_in(job.spec, inputs), action_spec_of(BenchmarkSpec, job, inputs, "model", "data"),
                       cache_dir=ctx.home / "cache" / "passes", progress=progress_reporter(ctx))
    ctx.log(str(result))
    return result.to_dict()


class OptimizeJobSpec(OptimizeSpec):
    """``OptimizeSpec``'s fields plus spec (path or inline ModelSpec) and files."""

    spec: str | dict[str, Any]
    files: dict[str, str] = FILES_FIELD


def run_optimize(job: OptimizeJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.optimize.search import search

    inputs = materialize_inputs(job.files, ctx)
    result = search(model_spec_in(job.spec, inputs), action_spec_of(OptimizeSpec, job, inputs, "data", "calib"),
                    out_dir=Path(ctx.workdir), cache_dir=ctx.home / "cache", progress=progress_reporter(ctx))
    ctx.log(str(result))
    return result.to_dict()


class RunJobSpec(BaseModel):
    """Args: migration (MIGRATION.yaml: a name among ``files``, whose relative paths resolve among them too; or an
    admin's server path), out (admin: a server folder; default the job folder), force (phases to rerun),
    files (uploaded files, ``relative name -> sha256 digest``)."""

    model_config = ConfigDict(extra="forbid")

    migration: str
    out: str | None = None
    force: list[str] = Field(default_factory=list)
    files: dict[str, str] = FILES_FIELD


def authorize_run(job: RunJobSpec, caller, workspace) -> None:
    """Check MIGRATION.yaml itself (read from the blob store): its paths, its model's entrypoint, and
    ``python_path`` (folders put on the import path: code, so admin only)."""
    import posixpath

    from pydantic import ValidationError

    from modelyard.core.errors import Forbidden, InvalidInput
    from modelyard.core.trust import CODE_ROLE, check_path
    from modelyard.migrate.job_inputs import authorize_files, authorize_model_spec, read_mapping_blob
    from modelyard.migrate.pipeline.config import MigrationConfig

    authorize_files(job.files, workspace)
    check_path(job.migration, caller, "spec.migration")
    check_path(job.out, caller, "spec.out")
    if job.migration not in job.files:
        if caller.trusted:
            return  # the admin's own file on the server, read when the job runs
        raise InvalidInput(f"spec.migration: {job.migration!r} is not one of the uploaded files; upload "
                           "MIGRATION.yaml and what it names, and list them in files")
    data = read_mapping_blob(workspace, job.files[job.migration], job.migration, "spec.migration")
    try:
        config = MigrationConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"spec.migration: invalid MIGRATION.yaml: {exc.errors()[0]['msg']}") from None
    for name in ("source", "data", "calibration"):
        check_path(getattr(config, name), caller, f"migration.{name}")
    for index, entry in enumerate(config.python_path):
        check_path(entry, caller, f"migration.python_path[{index}]")
    if config.python_path and not caller.trusted:
        raise Forbidden(f"migration.python_path: putting uploaded folders on the import path runs their code; that "
                        f"needs the {CODE_ROLE} role", code="code_not_allowed")
    if isinstance(config.model, str):
        check_path(config.model, caller, "migration.model")
        name = posixpath.normpath(posixpath.join(posixpath.dirname(job.migration), config.model))
        if name in job.files:
            authorize_model_spec(name, job.files, caller, workspace, field="migration.model")
        elif not caller.trusted:
            raise InvalidInput(f"migration.model: {name!r} is not one of the uploaded files")
    else:
        authorize_model_spec(config.model, job.files, caller, workspace, field="migration.model")


def run_pipeline(job: RunJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.pipeline.run import run_migration

    inputs = materialize_inputs(job.files, ctx)
    out = output_path(job.out, ctx)
    result = run_migration(resolve(job.migration, inputs), out, cache_dir=ctx.home / "cache", force=tuple(job.force),
                           progress=progress_reporter(ctx))
    ctx.log(str(result))
    payload = result.to_dict()
    if job.out is None and (out / "report").is_dir():  # the job's own reports, downloadable as one zip
        payload["download"] = zip_to_blob(out / "report", ctx)
    return payload


BENCHMARK = JobKind("migrate.benchmark", BenchmarkJobSpec, run_benchmark, idempotent=True,
                    authorize=model_job_authorizer("model", "data"),
                    description="Benchmark a model on a backend: latency percentiles, throughput, memory, hot spots.")
OPTIMIZE = JobKind("migrate.optimize", OptimizeJobSpec, run_optimize, idempotent=True,
                   authorize=model_job_authorizer("data", "calib"),
                   description="Accuracy-gated search for the fastest configuration of a model on a target.")
RUN = JobKind("migrate.run", RunJobSpec, run_pipeline, idempotent=True, authorize=authorize_run,
              description="Run (or resume) a whole migration from MIGRATION.yaml and write its reports.")
