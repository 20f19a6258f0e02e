"""Job kinds for model migration: ``migrate.convert``, ``migrate.compare``, ``migrate.coverage``.

Each runs the same library call as the CLI, writes its files into the job's ``workdir`` and returns the same JSON
the CLI prints with ``--json``. The model spec is inline (a ModelSpec mapping) or the name of an uploaded file in
``files``; what the caller may name (code, server paths) is checked at submit (``modelyard.migrate.job_inputs``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from modelyard.core.errors import ModelyardError
from modelyard.core.jobkind import JobContext, JobKind
from modelyard.migrate.job_inputs import (
    FILES_FIELD,
    authorize_files,
    authorize_model_spec,
    authorize_paths,
    materialize_inputs,
    model_spec_in,
    resolve,
)
from modelyard.migrate.model.specs import CompareSpec, ConvertSpec


def model_job_authorizer(*path_fields: str):
    """``JobKind.authorize`` for a kind with ``spec`` (a ModelSpec), ``files`` and the given path fields."""

    def authorize(job, caller, workspace) -> None:
        authorize_files(job.files, workspace)
        authorize_model_spec(job.spec, job.files, caller, workspace)
        authorize_paths(job, caller, *path_fields)

    return authorize


def progress_reporter(ctx: JobContext):
    def report(fraction: float, message: str) -> None:
        if ctx.cancelled():
            raise ModelyardError("cancelled on request", code="cancelled", status=409)
        ctx.progress(fraction, message)

    return report


class ConvertJobSpec(ConvertSpec):
    """``ConvertSpec``'s fields (to, opset, calib) plus spec (path or inline ModelSpec) and files."""

    spec: str | dict[str, Any]
    files: dict[str, str] = FILES_FIELD


def action_spec_of(spec_cls, job: BaseModel, inputs, *path_fields: str):
    """The action spec inside a job spec, its uploaded-file names resolved to the files' local paths."""
    data = job.model_dump(include=set(spec_cls.model_fields))
    for name in path_fields:
        resolved = resolve(data.get(name), inputs)
        data[name] = None if resolved is None else str(resolved)
    return spec_cls.model_validate(data)


def run_convert(job: ConvertJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.passes import convert_model

    inputs = materialize_inputs(job.files, ctx)
    options = action_spec_of(ConvertSpec, job, inputs, "calib")
    result = convert_model(model_spec_in(job.spec, inputs), options, ctx.workdir,
                           cache_dir=ctx.home / "cache" / "passes", progress=progress_reporter(ctx))
    for step in result.steps:
        ctx.log(str(step))
    return result.to_dict()


class CompareJobSpec(CompareSpec):
    """``CompareSpec``'s fields (``thresholds`` a ThresholdSet mapping) plus spec, dump (write layer tensors into
    the job folder) and files."""

    spec: str | dict[str, Any]
    dump: bool = False
    files: dict[str, str] = FILES_FIELD


def run_compare(job: CompareJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.compare import compare
    from modelyard.migrate.model.compare_report import write_report

    inputs = materialize_inputs(job.files, ctx)
    result = compare(
        model_spec_in(job.spec, inputs), action_spec_of(CompareSpec, job, inputs, "target_model", "data"),
        dump_dir=ctx.workdir / "dumps" if job.dump else None, cache_dir=ctx.home / "cache" / "passes",
        progress=progress_reporter(ctx),
    )
    payload = result.to_dict()
    report = write_report(payload, ctx.workdir / "compare.html")
    ctx.log(str(result))
    payload["report"] = str(report)
    return payload


class CoverageJobSpec(BaseModel):
    """Args: spec (path or inline), target (openvino:cpu, onnxruntime:<ep>, npu), model (optional .onnx)."""

    model_config = ConfigDict(extra="forbid")

    spec: str | dict[str, Any]
    target: str = "openvino:cpu"
    model: str | None = None
    files: dict[str, str] = FILES_FIELD


def run_coverage(job: CoverageJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.coverage import op_coverage

    ctx.progress(0.1, f"coverage on {job.target}")
    inputs = materialize_inputs(job.files, ctx)
    result = op_coverage(model_spec_in(job.spec, inputs), job.target, model_path=resolve(job.model, inputs),
                         cache_dir=ctx.home / "cache" / "passes")
    ctx.log(str(result))
    return result.to_dict()


CONVERT = JobKind("migrate.convert", ConvertJobSpec, run_convert, idempotent=True,
                  authorize=model_job_authorizer("calib"),
                  description="Convert a model (ONNX, fp16, INT8, OpenVINO IR, torch.export), verified and cached.")
COMPARE = JobKind("migrate.compare", CompareJobSpec, run_compare, idempotent=True,
                  authorize=model_job_authorizer("target_model", "data"),
                  description="Compare a target backend against a reference: metrics, verdict, layer-wise divergence.")
COVERAGE = JobKind("migrate.coverage", CoverageJobSpec, run_coverage, idempotent=True,
                   authorize=model_job_authorizer("model"),
                   description="Operator coverage of a model's graph on a target, with fallbacks and dynamic shapes.")
