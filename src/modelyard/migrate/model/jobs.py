"""Job kinds for model migration: ``migrate.convert``, ``migrate.compare``, ``migrate.coverage``.

Each runs the same library call as the CLI, writes its files into the job's ``workdir`` and returns the same JSON
the CLI prints with ``--json``. The model spec is given as a path or inline (a ModelSpec mapping).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import ModelyardError
from modelyard.core.jobkind import JobContext, JobKind


def model_spec_from(value: str | dict[str, Any]):
    from modelyard.runtime.spec import load_spec, parse_spec

    return load_spec(value) if isinstance(value, str) else parse_spec(value, base_dir=Path.cwd())


def progress_reporter(ctx: JobContext):
    def report(fraction: float, message: str) -> None:
        if ctx.cancelled():
            raise ModelyardError("cancelled on request", code="cancelled", status=409)
        ctx.progress(fraction, message)

    return report


class ConvertJobSpec(BaseModel):
    """Args: spec (path or inline ModelSpec), to (target format), opset, calib (calibration data path)."""

    model_config = ConfigDict(extra="forbid")

    spec: str | dict[str, Any]
    to: str = "onnx"
    opset: int | None = None
    calib: str | None = None


def run_convert(job: ConvertJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.passes import convert

    result = convert(
        model_spec_from(job.spec), job.to, out_dir=ctx.workdir, cache_dir=ctx.home / "cache" / "passes", opset=job.opset,
        calibration=job.calib, progress=progress_reporter(ctx),
    )
    for step in result.steps:
        ctx.log(str(step))
    return result.to_dict()


class CompareJobSpec(BaseModel):
    """Args mirror ``modelyard migrate compare``; ``thresholds`` is a ThresholdSet mapping."""

    model_config = ConfigDict(extra="forbid")

    spec: str | dict[str, Any]
    reference: str = "torch:cpu"
    target: str = "onnxruntime:cpu"
    target_model: str | None = None
    samples: int = Field(default=8, ge=1)
    data: str | None = None
    seed: int = 0
    layerwise: bool = False
    layer_depth: int | None = Field(default=None, ge=1)
    preset: Literal["fp32", "fp16", "bf16", "int8"] | None = None
    thresholds: dict[str, Any] | None = None
    dump: bool = False


def run_compare(job: CompareJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.compare import compare_models
    from modelyard.migrate.model.compare_report import write_report
    from modelyard.migrate.model.metrics import ThresholdSet

    limits = None
    if job.thresholds is not None or job.preset:
        data = dict(job.thresholds or {})
        if job.preset:
            data["preset"] = job.preset
        limits = ThresholdSet.model_validate(data)
    result = compare_models(
        model_spec_from(job.spec), job.reference, job.target, target_model=job.target_model, samples=job.samples,
        data=job.data, seed=job.seed, thresholds=limits, layerwise=job.layerwise, layer_depth=job.layer_depth,
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


def run_coverage(job: CoverageJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.coverage import op_coverage

    ctx.progress(0.1, f"coverage on {job.target}")
    result = op_coverage(model_spec_from(job.spec), job.target, model_path=job.model, cache_dir=ctx.home / "cache" / "passes")
    ctx.log(str(result))
    return result.to_dict()


CONVERT = JobKind("migrate.convert", ConvertJobSpec, run_convert, idempotent=True,
                  description="Convert a model (ONNX, fp16, INT8, OpenVINO IR, torch.export), verified and cached.")
COMPARE = JobKind("migrate.compare", CompareJobSpec, run_compare, idempotent=True,
                  description="Compare a target backend against a reference: metrics, verdict, layer-wise divergence.")
COVERAGE = JobKind("migrate.coverage", CoverageJobSpec, run_coverage, idempotent=True,
                   description="Operator coverage of a model's graph on a target, with fallbacks and dynamic shapes.")
