"""Job kinds ``migrate.benchmark``, ``migrate.optimize`` and ``migrate.run``: the CLI's library calls as durable
jobs, writing into the job's folder and returning the JSON the CLI prints with ``--json``.

``migrate.run`` keeps its state in ``out`` (default: the job folder), so a retried or resubmitted job with the
same ``out`` resumes at the phase that did not finish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.jobkind import JobContext, JobKind
from modelyard.migrate.model.jobs import model_spec_from, progress_reporter


class BenchmarkJobSpec(BaseModel):
    """Args mirror ``modelyard migrate benchmark``; ``options`` are runtime options (threads, precision...)."""

    model_config = ConfigDict(extra="forbid")

    spec: str | dict[str, Any]
    backend: str = "onnxruntime:cpu"
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    data: str | None = None
    profile: bool = False
    max_seconds: float = Field(default=3.0, gt=0)


def run_benchmark(job: BenchmarkJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.model.bench import BenchSettings, benchmark

    result = benchmark(
        model_spec_from(job.spec), job.backend, batch_sizes=job.batch_sizes, options=job.options, model_path=job.model,
        data=job.data, profile=job.profile, settings=BenchSettings(max_seconds=job.max_seconds),
        cache_dir=ctx.home / "cache" / "passes", progress=progress_reporter(ctx),
    )
    ctx.log(str(result))
    return result.to_dict()


class OptimizeJobSpec(BaseModel):
    """Args mirror ``modelyard migrate optimize``."""

    model_config = ConfigDict(extra="forbid")

    spec: str | dict[str, Any]
    target: str = "cpu"
    objective: Literal["latency", "throughput"] = "latency"
    batch_size: int = Field(default=1, ge=1)
    max_accuracy_drop: float = Field(default=0.01, ge=0, lt=1)
    budget_s: float = Field(default=600.0, gt=0)
    samples: int = Field(default=256, ge=1)
    data: str | None = None
    calib: str | None = None
    strategy: Literal["search", "exhaustive"] = "search"
    min_speedup: float | None = Field(default=None, gt=0)


def run_optimize(job: OptimizeJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.optimize.search import optimize

    result = optimize(
        model_spec_from(job.spec), job.target, objective=job.objective, batch_size=job.batch_size,
        max_accuracy_drop=job.max_accuracy_drop, budget_s=job.budget_s, out_dir=Path(ctx.workdir), samples=job.samples,
        data=job.data, calibration=job.calib, strategy=job.strategy, cache_dir=ctx.home / "cache",
        min_speedup=job.min_speedup, progress=progress_reporter(ctx),
    )
    ctx.log(str(result))
    return result.to_dict()


class RunJobSpec(BaseModel):
    """Args: migration (path of MIGRATION.yaml), out (default: the job folder), force (phases to rerun)."""

    model_config = ConfigDict(extra="forbid")

    migration: str
    out: str | None = None
    force: list[str] = Field(default_factory=list)


def run_pipeline(job: RunJobSpec, ctx: JobContext) -> dict:
    from modelyard.migrate.pipeline.run import run_migration

    result = run_migration(job.migration, Path(job.out) if job.out else Path(ctx.workdir), cache_dir=ctx.home / "cache",
                           force=tuple(job.force), progress=progress_reporter(ctx))
    ctx.log(str(result))
    return result.to_dict()


BENCHMARK = JobKind("migrate.benchmark", BenchmarkJobSpec, run_benchmark, idempotent=True,
                    description="Benchmark a model on a backend: latency percentiles, throughput, memory, hot spots.")
OPTIMIZE = JobKind("migrate.optimize", OptimizeJobSpec, run_optimize, idempotent=True,
                   description="Accuracy-gated search for the fastest configuration of a model on a target.")
RUN = JobKind("migrate.run", RunJobSpec, run_pipeline, idempotent=True,
              description="Run (or resume) a whole migration from MIGRATION.yaml and write its reports.")
