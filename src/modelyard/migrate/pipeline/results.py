"""The migration pipeline's phase results as frozen values: one class per phase, plus ``Skipped`` for a phase with
nothing to do here. ``to_dict()`` is the phase's ``result.json``; ``from_dict()`` reads it back when ``run`` reuses
a finished phase, and refuses one that does not fit (unknown or missing fields), so a stale file is rerun rather
than misread.

The top-level fields are typed; rows inside them (findings, changes, compare outputs and layers, benchmark runs,
accuracy figures) stay the JSON mappings their own schemas (``modelyard.compare/1``, ``modelyard.optimize/1``, ...)
define, carried verbatim.

Example::

    result = CompareResult.from_dict(json.loads(path.read_text()))
    result.verdict              # "pass"
    result.to_dict()            # the same JSON again
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

# field metadata: ``key`` (the JSON name when it is not the field's), ``of`` (a record class for a nested mapping or
# each item of a list), ``optional`` (left out of the JSON when None, as the phase never wrote it then)
_OPTIONAL = {"optional": True}


class ResultError(ValueError):
    """A ``result.json`` that does not fit its phase's result (written by another version, or edited)."""


class Record:
    """``to_dict`` / ``from_dict`` for a frozen dataclass whose fields are the JSON's keys, in order."""

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for spec in fields(self):  # type: ignore[arg-type]
            value = getattr(self, spec.name)
            if value is None and spec.metadata.get("optional"):
                continue
            out[spec.metadata.get("key", spec.name)] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if not isinstance(data, Mapping):
            raise ResultError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        known = set()
        for spec in fields(cls):  # type: ignore[arg-type]
            key = spec.metadata.get("key", spec.name)
            known.add(key)
            if key not in data:
                if spec.default is MISSING and spec.default_factory is MISSING:
                    raise ResultError(f"{cls.__name__}: missing field {key!r}")
                continue
            kwargs[spec.name] = _typed(data[key], spec.metadata.get("of"))
        unknown = sorted(set(data) - known)
        if unknown:
            raise ResultError(f"{cls.__name__}: unknown fields {', '.join(map(repr, unknown))}")
        return cls(**kwargs)


def _plain(value):
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _typed(value, record: type[Record] | None):
    if isinstance(value, list):
        return tuple(_typed(item, record) for item in value)
    if record is not None and value is not None:
        return record.from_dict(value)
    return value


class PhaseResult(Record, ABC):
    """What every phase's result answers: skipped or not, and one line for the CLI and ``state.json``."""

    skipped: ClassVar[bool] = False

    @abstractmethod
    def summary(self) -> str:
        """One line saying what the phase did."""


@dataclass(frozen=True)
class Skipped(PhaseResult):
    """A phase with nothing to do here (no source folder, a backend this machine lacks); ``details`` are the
    extra facts it records (``target``, ``artifact``)."""

    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)
    skipped: ClassVar[bool] = True

    def to_dict(self) -> dict:
        return {"skipped": True, "reason": self.reason, **self.details}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Skipped:
        if data.get("skipped") is not True or "reason" not in data:
            raise ResultError("Skipped: needs skipped: true and a reason")
        return cls(data["reason"], {k: v for k, v in data.items() if k not in ("skipped", "reason")})

    def summary(self) -> str:
        return f"skipped: {self.reason}"


@dataclass(frozen=True)
class AnalyzeResult(PhaseResult):
    summary_counts: dict = field(metadata={"key": "summary"})
    ready: bool
    files: dict
    findings: tuple[dict, ...]
    findings_total: int

    def summary(self) -> str:
        return f"{self.summary_counts['findings']} findings, readiness {self.summary_counts['readiness_score']}/100"


@dataclass(frozen=True)
class ApplyResult(PhaseResult):
    """``modelyard.migration/1`` of the rewrite plus its change rows, the manual items left (with owners) and the
    folder of migrated code."""

    schema: str
    target: str
    source: str
    destination: str | None
    dry_run: bool
    files_changed: tuple[str, ...]
    sites_rewritten: int
    comments_added: int
    before: dict
    after: dict | None
    reports: dict
    changes: tuple[dict, ...]
    manual_items: tuple[dict, ...]
    migrated: str

    def summary(self) -> str:
        return f"{len(self.files_changed)} files changed, {len(self.manual_items)} manual items"


@dataclass(frozen=True)
class ConvertResult(PhaseResult):
    """``modelyard.convert/1``; a model that already is ONNX has no schema, target or steps, only a note."""

    artifact: dict
    steps: tuple[dict, ...] = ()
    schema: str | None = field(default=None, metadata=_OPTIONAL)
    target: str | None = field(default=None, metadata=_OPTIONAL)
    note: str | None = field(default=None, metadata=_OPTIONAL)
    _order: ClassVar[tuple[str, ...]] = ("schema", "target", "artifact", "steps", "note")

    def to_dict(self) -> dict:
        data = super().to_dict()
        return {key: data[key] for key in self._order if key in data}

    @property
    def path(self) -> str:
        return self.artifact["path"]

    def summary(self) -> str:
        return self.path


@dataclass(frozen=True)
class CoverageResult(PhaseResult):
    schema: str
    target: str
    model: str | None
    method: str
    total_nodes: int
    native_nodes: int
    coverage: float
    ops: tuple[dict, ...]
    fallback: tuple[dict, ...]
    dynamic: dict | None
    notes: tuple[str, ...]

    def summary(self) -> str:
        return f"{self.coverage:.1%} native on {self.target}"


@dataclass(frozen=True)
class CompareResult(PhaseResult):
    """``modelyard.compare/1`` plus the HTML report's path and a note when the preferred backend was missing."""

    schema: str
    reference: str
    target: str
    reference_model: str
    target_model: str
    samples: int
    verdict: str
    reasons: tuple[str, ...]
    thresholds: dict | None
    noise_floor: dict | None
    outputs: tuple[dict, ...]
    task: dict | None
    layers: tuple[dict, ...]
    first_divergence: dict | None
    layerwise: dict | None
    backend_info: dict | None
    seconds: float
    report: str
    note: str | None = field(default=None, metadata=_OPTIONAL)

    def summary(self) -> str:
        return f"{self.verdict} on {self.target}"


@dataclass(frozen=True)
class Chosen(Record):
    """The optimiser's best candidate (``best`` of ``modelyard.optimize/1``)."""

    label: str
    backend: str
    passes: tuple[dict, ...]
    options: dict
    artifact: str | None
    latency_ms_p50: float | None
    throughput: float | None
    speedup: float | None
    accuracy: dict


@dataclass(frozen=True)
class Candidate(Record):
    """One measured candidate (a ``candidates[]`` entry of ``modelyard.optimize/1``)."""

    label: str
    backend: str
    passes: tuple[dict, ...]
    options: dict
    latency_ms_p50: float | None
    throughput: float | None
    speedup: float | None
    accuracy: dict
    accepted: bool
    reason: str
    pareto: bool
    cached: bool
    fallback_of: str | None
    latency: dict | None
    artifact: str | None


@dataclass(frozen=True)
class Bench(Record):
    """A ``modelyard.bench/1`` benchmark: one backend over several batch sizes (``runs``), with its profile."""

    schema: str
    backend: str
    model: str
    options: dict
    runs: tuple[dict, ...]
    warnings: tuple[str, ...]
    profile: dict | None
    runner_info: dict
    environment: dict


@dataclass(frozen=True)
class Performance(Record):
    """The baseline and the chosen configuration benchmarked per batch size."""

    batch_sizes: tuple[int, ...]
    baseline: Bench = field(metadata={"of": Bench})
    best: Bench | None = field(default=None, metadata={"of": Bench, "optional": True})
    best_error: str | None = field(default=None, metadata=_OPTIONAL)


@dataclass(frozen=True)
class OptimizeResult(PhaseResult):
    """``modelyard.optimize/1`` plus the performance before/after per batch size."""

    schema: str
    target: str
    objective: str
    batch_size: int
    max_accuracy_drop: float
    strategy: str
    baseline: dict
    best: Chosen | None = field(metadata={"of": Chosen})
    candidates: tuple[Candidate, ...] = field(metadata={"of": Candidate})
    pareto: tuple[int, ...]
    stopped: str
    notes: tuple[str, ...]
    skipped_backends: tuple[dict, ...] = field(metadata={"key": "skipped"})
    budget_s: float | None
    seconds: float
    performance: Performance = field(metadata={"of": Performance})

    def summary(self) -> str:
        return f"best {self.best.label} {self.best.speedup}x" if self.best else "no candidate accepted"


@dataclass(frozen=True)
class PackageResult(PhaseResult):
    path: str
    files: int
    manifest: str
    notes: tuple[str, ...]

    def summary(self) -> str:
        return f"{self.files} files"


@dataclass(frozen=True)
class Headline(Record):
    readiness_score: int | None
    verdict: str | None
    speedup: float | None
    accuracy: str | None
    chosen: str | None


@dataclass(frozen=True)
class AcceptanceRow(Record):
    """One goal of MIGRATION.yaml: its target, the measured value and whether it passed (None: not measured)."""

    goal: str
    target: str
    measured: Any
    passed: bool | None
    note: str


@dataclass(frozen=True)
class ReportResult(PhaseResult):
    """The report phase: where the three files are, the headline, the checklist and whether it passed."""

    files: dict
    headline: Headline = field(metadata={"of": Headline})
    accepted: bool
    acceptance: tuple[AcceptanceRow, ...] = field(metadata={"of": AcceptanceRow})
    notes: tuple[str, ...]

    def summary(self) -> str:
        return "accepted" if self.accepted else "not accepted"


RESULT_TYPES: dict[str, type[PhaseResult]] = {
    "analyze": AnalyzeResult, "apply": ApplyResult, "convert": ConvertResult, "coverage": CoverageResult,
    "compare": CompareResult, "optimize": OptimizeResult, "package": PackageResult, "report": ReportResult,
}


def result_from_dict(phase: str, data: Mapping[str, Any]) -> PhaseResult:
    """Phase ``phase``'s result from its ``result.json``.

    Raises:
        ResultError: the JSON fits neither the phase's result nor ``Skipped``.
    """
    if isinstance(data, Mapping) and data.get("skipped") is True:
        return Skipped.from_dict(data)
    return RESULT_TYPES[phase].from_dict(data)
