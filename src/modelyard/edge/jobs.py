"""The ``edge.package`` job kind: packaging (pruning, INT8, each gated by the compare engine, latency measured)
takes seconds to minutes, so it runs on the job workers like every other long action, and the CLI, the API and the
console follow one job. The spec names a registry model version and a target only: no code, no server paths.
"""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from modelyard.core.errors import InvalidInput
from modelyard.core.jobkind import JobContext, JobKind


class PackageSpec(BaseModel):
    """Args:
        model: the registry model version, ``NAME@VERSION`` or ``NAME@ALIAS`` (an ONNX model).
        target: the device class: ``cpu-x86``, ``cpu-arm``, ``openvino-cpu`` (``ascend-310`` is refused with the
            conversion steps).
        int8: try INT8 static quantisation. prune: try pruning. Each is kept only when the compare engine's gate
            accepts it.
        max_accuracy_drop: the gate for each step (0.01 = 1 %).
        calibration: the dataset version (``NAME@VERSION``) INT8 is calibrated and the gate judges on; default: the
            one in the model's lineage (required for INT8 when the lineage names none).
    """

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=40)
    int8: bool = True
    prune: bool = True
    max_accuracy_drop: float = Field(default=0.01, ge=0, le=1)
    calibration: str | None = Field(default=None, min_length=1, max_length=200)


def _owner(workspace, job_id: str) -> str:
    from modelyard.store.schema import jobs

    with workspace.engine.connect() as conn:
        owner = conn.execute(sa.select(jobs.c.owner).where(jobs.c.id == job_id)).scalar()
    return owner or f"job {job_id}"


def run_package(spec: PackageSpec, ctx: JobContext) -> dict:
    from modelyard.core.settings import Settings
    from modelyard.edge.bundles import Bundles
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(ctx.home), create=False, migrate=False)
    try:
        ctx.progress(0.05, f"packaging {spec.model} for {spec.target}")
        bundle = Bundles(workspace).package(spec.model, spec.target, int8=spec.int8, prune=spec.prune,
                                            max_accuracy_drop=spec.max_accuracy_drop,
                                            created_by=_owner(workspace, ctx.job_id), progress=ctx.progress,
                                            calibration=spec.calibration)
        figures = bundle["figures"]
        ctx.log(f"bundle {bundle['id']}: applied {', '.join(figures['applied']) or 'nothing'}; size "
                f"{figures['float']['size_bytes']} -> {figures['final']['size_bytes']} bytes, batch-1 latency "
                f"{figures['float']['latency_ms_batch1']} -> {figures['final']['latency_ms_batch1']} ms")
        return bundle
    finally:
        workspace.close()


def authorize_package(spec: PackageSpec, _caller, workspace) -> None:
    """At submit: the target is known, the model version exists and so does the calibration dataset (a 422 /
    404 now, not a failed job later)."""
    from modelyard.edge.bundles import ASCEND_REFUSAL, TARGETS
    from modelyard.registry.versions import ModelRegistry

    if spec.target not in TARGETS:
        raise InvalidInput(f"unknown target {spec.target!r}; known: {', '.join(TARGETS)}")
    if spec.target == "ascend-310":
        raise InvalidInput(ASCEND_REFUSAL)
    version = ModelRegistry(workspace).get_version(spec.model)
    if spec.int8:
        from modelyard.data.datasets import DatasetStore
        from modelyard.edge.calibration import calibration_ref

        DatasetStore(workspace).get(calibration_ref(version, spec.calibration))


PACKAGE = JobKind(
    "edge.package",
    PackageSpec,
    run_package,
    idempotent=True,
    authorize=authorize_package,
    description="Package a registered ONNX model for a device class into a signed edge bundle (gated pruning/INT8).",
)
