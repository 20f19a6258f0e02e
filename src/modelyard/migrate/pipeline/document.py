"""The ``modelyard.migration-report/1`` document as frozen values: ``report`` builds a ``MigrationReport`` from the
phase results, ``render`` reads its attributes, and ``to_dict()`` is ``report.json`` (the fields are declared in
the order the JSON has always had them, so the bytes do not change)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelyard.migrate.pipeline.results import AcceptanceRow, Chosen, Headline, Record

SCHEMA = "modelyard.migration-report/1"


@dataclass(frozen=True)
class Readiness(Record):
    """Code-analysis summaries before and after the rewrite (``None`` when that step did not run)."""

    before: dict | None
    after: dict | None
    score: int | None
    skipped: str | None


@dataclass(frozen=True)
class CoverageSummary(Record):
    target: str | None
    coverage: float | None
    total_nodes: int | None
    native_nodes: int | None
    fallback: tuple[dict, ...]
    dynamic: dict | None
    skipped: str | None


@dataclass(frozen=True)
class MigrationSection(Record):
    source: str | None
    code_target: str
    readiness: Readiness = field(metadata={"of": Readiness})
    changes: tuple[dict, ...]
    files_changed: tuple[str, ...]
    migrated_code: str | None
    manual_items: tuple[dict, ...]
    manual_effort_hours: dict
    manual_items_by_owner: dict
    coverage: CoverageSummary = field(metadata={"of": CoverageSummary})


@dataclass(frozen=True)
class Precision(Record):
    reference: str | None
    target: str | None
    samples: int | None
    verdict: str | None
    reasons: tuple[str, ...]
    outputs: tuple[dict, ...]
    task: dict | None
    noise_floor: dict | None
    first_divergence: dict | None
    layers: tuple[dict, ...]
    compare_report: str | None


@dataclass(frozen=True)
class TaskMetrics(Record):
    fp32: dict | None
    chosen: dict | None


@dataclass(frozen=True)
class BackendRuns(Record):
    backend: str | None
    runs: tuple[dict, ...]

    def by_batch(self) -> dict[int, dict]:
        return {run["batch_size"]: run for run in self.runs}


@dataclass(frozen=True)
class PerformanceSection(Record):
    batch_sizes: tuple[int, ...]
    baseline: BackendRuns = field(metadata={"of": BackendRuns})
    chosen: BackendRuns = field(metadata={"of": BackendRuns})
    error: str | None


@dataclass(frozen=True)
class CandidateRow(Record):
    """A candidate as the report shows it; ``accuracy`` has ``metric``, ``value``, ``drop`` and ``cosine``."""

    label: str
    backend: str
    options: dict
    latency_ms_p50: float | None
    speedup: float | None
    accepted: bool
    reason: str
    pareto: bool
    fallback_of: str | None
    accuracy: dict


@dataclass(frozen=True)
class Optimization(Record):
    objective: str | None
    batch_size: int | None
    max_accuracy_drop: float | None
    baseline: dict | None
    candidates: tuple[CandidateRow, ...] = field(metadata={"of": CandidateRow})
    stopped: str | None
    notes: tuple[str, ...]
    skipped: tuple[dict, ...]


@dataclass(frozen=True)
class HotSpots(Record):
    method: str
    by_op_type: tuple[dict, ...]
    nodes: tuple[dict, ...]


@dataclass(frozen=True)
class VerificationSection(Record):
    precision: Precision = field(metadata={"of": Precision})
    task_metrics: TaskMetrics = field(metadata={"of": TaskMetrics})
    performance: PerformanceSection = field(metadata={"of": PerformanceSection})
    optimization: Optimization = field(metadata={"of": Optimization})
    chosen_configuration: Chosen | None = field(metadata={"of": Chosen})
    hot_spots: HotSpots | None = field(metadata={"of": HotSpots})
    environment: dict[str, Any]


@dataclass(frozen=True)
class MigrationReport(Record):
    """The whole report; ``bool()`` is True when every goal of the acceptance checklist passed."""

    schema: str
    name: str
    generated_at: str
    target: str
    reference: str
    headline: Headline = field(metadata={"of": Headline})
    accepted: bool
    migration_report: MigrationSection = field(metadata={"of": MigrationSection})
    test_report: VerificationSection = field(metadata={"of": VerificationSection})
    acceptance: tuple[AcceptanceRow, ...] = field(metadata={"of": AcceptanceRow})
    package: str | None
    notes: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.accepted
