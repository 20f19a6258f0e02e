"""The migration deliverables (the seed's migration guide, migration and adaptation test report, acceptance report)
as one document, ``modelyard.migration-report/1``, written three ways: a single self-contained HTML file with inline
SVG plots, JSON, and Markdown.

* **Migration report**: readiness summary (score, effort, findings by status and category), the change list of
  the automatic rewrite, the manual items left with owners and effort, operator coverage on the target.
* **Test report**: precision tables (per output, task agreement, the layer-depth error plot and first
  divergence), performance before/after per batch size (latency and throughput charts), the optimisation
  candidates and Pareto front, the chosen configuration and its hot spots, and the environment manifest
  (versions, CPU flags, seeds, input hashes) needed to reproduce it.
* **Acceptance checklist**: each goal of MIGRATION.yaml with the measured value and pass/fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from modelyard.migrate.pipeline.config import MigrationConfig
from modelyard.migrate.pipeline.document import (
    SCHEMA,
    BackendRuns,
    CandidateRow,
    CoverageSummary,
    HotSpots,
    MigrationReport,
    MigrationSection,
    Optimization,
    PerformanceSection,
    Precision,
    Readiness,
    TaskMetrics,
    VerificationSection,
)
from modelyard.migrate.pipeline.results import (
    AcceptanceRow,
    AnalyzeResult,
    ApplyResult,
    CompareResult,
    CoverageResult,
    Headline,
    OptimizeResult,
    PackageResult,
    PhaseResult,
    ReportResult,
    Skipped,
)

_VERDICTS = ("pass", "warn", "fail")
_LAYER_COLUMNS = ("index", "name", "target_name", "max_abs_err", "cosine", "kind", "noise_floor_max_abs_err", "verdict")
_ACCURACY_COLUMNS = ("metric", "value", "drop", "cosine")

Results = Mapping[str, PhaseResult]


def _ran(results: Results, phase: str, kind: type[PhaseResult]):
    """The phase's result when it ran (None when it was skipped or has not run)."""
    result = results.get(phase)
    return result if isinstance(result, kind) else None


def _skip_reason(results: Results, phase: str) -> str | None:
    result = results.get(phase)
    return result.reason if isinstance(result, Skipped) else None


def _columns(row: Mapping, names: Iterable[str]) -> dict:
    """A row of another schema (a compare layer, a gate's accuracy) on the report's columns; a column the row
    lacks is null."""
    return {name: row.get(name) for name in names}


def migration_section(config: MigrationConfig, results: Results) -> MigrationSection:
    analysis: AnalyzeResult | None = _ran(results, "analyze", AnalyzeResult)
    applied: ApplyResult | None = _ran(results, "apply", ApplyResult)
    coverage: CoverageResult | None = _ran(results, "coverage", CoverageResult)
    before = analysis.summary_counts if analysis else None
    after = (applied.after if applied else None) or before
    if applied:
        manual = list(applied.manual_items)
    else:
        manual = [dict(f, owner=config.owners.owner_of(f["category"])) for f in (analysis.findings if analysis else ())
                  if f["status"] in ("manual", "unsupported")]
    effort_low = sum(item["effort"]["hours"][0] for item in manual)
    effort_high = sum(item["effort"]["hours"][1] for item in manual)
    owners: dict[str, int] = {}
    for item in manual:
        owners[item["owner"]] = owners.get(item["owner"], 0) + 1
    if coverage:
        covered = CoverageSummary(coverage.target, coverage.coverage, coverage.total_nodes, coverage.native_nodes,
                                  coverage.fallback, coverage.dynamic, None)
    else:
        covered = CoverageSummary(None, None, None, None, (), None, _skip_reason(results, "coverage"))
    return MigrationSection(
        source=config.source,
        code_target=config.code_target,
        readiness=Readiness(
            before=before,
            after=after if applied else None,
            score=after["readiness_score"] if after else None,
            skipped=_skip_reason(results, "analyze") if not analysis else None,
        ),
        changes=applied.changes if applied else (),
        files_changed=applied.files_changed if applied else (),
        migrated_code=applied.migrated if applied else None,
        manual_items=tuple(manual),
        manual_effort_hours={"low": round(effort_low, 1), "high": round(effort_high, 1)},
        manual_items_by_owner=owners,
        coverage=covered,
    )


def _precision(compare: CompareResult | None) -> Precision:
    if compare is None:
        return Precision(None, None, None, None, (), (), None, None, None, (), None)
    return Precision(
        reference=compare.reference, target=compare.target, samples=compare.samples, verdict=compare.verdict,
        reasons=compare.reasons, outputs=compare.outputs, task=compare.task, noise_floor=compare.noise_floor,
        first_divergence=compare.first_divergence,
        layers=tuple(_columns(row, _LAYER_COLUMNS) for row in compare.layers), compare_report=compare.report,
    )


def _optimization(opt: OptimizeResult | None) -> Optimization:
    if opt is None:
        return Optimization(None, None, None, None, (), None, (), ())
    candidates = tuple(
        CandidateRow(c.label, c.backend, c.options, c.latency_ms_p50, c.speedup, c.accepted, c.reason, c.pareto,
                     c.fallback_of, _columns(c.accuracy, _ACCURACY_COLUMNS))
        for c in opt.candidates
    )
    return Optimization(opt.objective, opt.batch_size, opt.max_accuracy_drop, opt.baseline, candidates, opt.stopped,
                        opt.notes, opt.skipped_backends)


def test_section(config: MigrationConfig, results: Results) -> VerificationSection:
    from modelyard.migrate.model.bench import environment

    compare: CompareResult | None = _ran(results, "compare", CompareResult)
    opt: OptimizeResult | None = _ran(results, "optimize", OptimizeResult)
    perf = opt.performance if opt else None
    measured = perf.best if perf else None
    best = opt.best if opt else None
    profile = measured.profile if measured else None
    return VerificationSection(
        precision=_precision(compare),
        task_metrics=TaskMetrics(fp32=compare.task if compare else None, chosen=best.accuracy if best else None),
        performance=PerformanceSection(
            batch_sizes=perf.batch_sizes if perf else (),
            baseline=BackendRuns(perf.baseline.backend, perf.baseline.runs) if perf else BackendRuns(None, ()),
            chosen=BackendRuns(measured.backend, measured.runs) if measured else BackendRuns(None, ()),
            error=perf.best_error if perf else None,
        ),
        optimization=_optimization(opt),
        chosen_configuration=best,
        hot_spots=HotSpots(profile["method"], tuple(profile["by_op_type"][:10]), tuple(profile["hot_spots"][:10]))
        if profile else None,
        environment=environment() | {"seed": config.seed, "input_hashes": _input_hashes(config)},
    )


def _input_hashes(config: MigrationConfig) -> dict:
    from modelyard.migrate.pipeline.state import input_digest

    hashes = {"model": input_digest(config, "model")}
    if config.source:
        hashes["source"] = input_digest(config, "source")
    for name in ("data", "calibration"):
        if getattr(config, name):
            hashes[name] = input_digest(config, name)
    return hashes


def acceptance(config: MigrationConfig, migration: MigrationSection, tests: VerificationSection
               ) -> tuple[AcceptanceRow, ...]:
    """One row per goal of MIGRATION.yaml: its target, the measured value, pass/fail and a note."""
    goals = config.goals
    best = tests.chosen_configuration
    optimization = tests.optimization
    rows: list[AcceptanceRow] = []

    def add(goal: str, target: str, measured, passed: bool | None, note: str = "") -> None:
        rows.append(AcceptanceRow(goal, target, measured, passed, note))

    if best:
        acc = best.accuracy
        add("accuracy drop", f"<= {goals.max_accuracy_drop:.2%} ({acc['metric']})", round(acc["drop"], 5),
            acc["drop"] <= goals.max_accuracy_drop + 1e-12,
            f"{acc['metric']} {acc['value']:.4f} on {acc['samples']} samples")
    else:
        add("accuracy drop", f"<= {goals.max_accuracy_drop:.2%}", None, False,
            "no optimised candidate kept the accuracy" if optimization.candidates else "optimize did not run")
    verdict = tests.precision.verdict
    add("fp32 precision compare", f"verdict {goals.compare_verdict} or better", verdict,
        None if verdict is None else _VERDICTS.index(verdict) <= _VERDICTS.index(goals.compare_verdict))
    if goals.min_speedup is not None:
        speedup = best.speedup if best else None
        reached = speedup is not None and speedup >= goals.min_speedup
        add("speedup vs baseline", f">= {goals.min_speedup:g}x", speedup, reached,
            _speedup_note(optimization, goals.min_speedup, reached))
    if goals.max_latency_ms is not None:
        latency = best.latency_ms_p50 if best else None
        add("latency p50", f"<= {goals.max_latency_ms:g} ms", latency,
            latency is not None and latency <= goals.max_latency_ms, f"batch {optimization.batch_size}")
    if goals.min_throughput is not None:
        throughput = best.throughput if best else None
        add("throughput", f">= {goals.min_throughput:g}/s", throughput,
            throughput is not None and throughput >= goals.min_throughput)
    if goals.min_readiness is not None:
        score = migration.readiness.score
        add("code readiness", f">= {goals.min_readiness:g}/100", score,
            score is not None and score >= goals.min_readiness,
            "after the automatic rewrite" if migration.readiness.after else "")
    if goals.min_coverage is not None:
        cov = migration.coverage.coverage
        add("operator coverage", f">= {goals.min_coverage:.0%}", cov, cov is not None and cov >= goals.min_coverage,
            migration.coverage.target or "")
    return tuple(rows)


def _speedup_note(optimization: Optimization, goal: float, reached: bool) -> str:
    """Why a speedup goal was missed: faster candidates lost accuracy, or nothing measured is that fast."""
    baseline = optimization.baseline["backend"] if optimization.baseline else None
    note = f"baseline {baseline}" if baseline else ""
    if reached:
        return note
    faster = [c for c in optimization.candidates if not c.accepted and (c.speedup or 0) >= goal]
    if faster:
        return f"{note}; faster candidates lose accuracy ({faster[0].label}: {faster[0].reason})"
    return f"{note}; no candidate measured reaches {goal:g}x on this hardware"


def build_report(config: MigrationConfig, results: Results) -> MigrationReport:
    """The ``modelyard.migration-report/1`` document from the phases' results."""
    migration = migration_section(config, results)
    tests = test_section(config, results)
    checklist = acceptance(config, migration, tests)
    best = tests.chosen_configuration
    package: PackageResult | None = _ran(results, "package", PackageResult)
    headline = Headline(
        readiness_score=migration.readiness.score,
        verdict=tests.precision.verdict,
        speedup=best.speedup if best else None,
        accuracy=f"{best.accuracy['metric']} {best.accuracy['value']:.4f}" if best else None,
        chosen=f"{best.label} on {best.backend}" if best else None,
    )
    return MigrationReport(
        schema=SCHEMA,
        name=config.name,
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        target=config.target,
        reference=config.reference,
        headline=headline,
        accepted=all(row.passed is not False for row in checklist),
        migration_report=migration,
        test_report=tests,
        acceptance=checklist,
        package=package.path if package else None,
        notes=tests.optimization.notes + (package.notes if package else ()),
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_reports(config: MigrationConfig, results: Results, folder: Path) -> ReportResult:
    """Write ``report.html``, ``report.json`` and ``report.md`` into ``folder``; returns the report phase result."""
    from modelyard.migrate.pipeline.render import render_html, render_markdown

    folder.mkdir(parents=True, exist_ok=True)
    document = build_report(config, results)
    files = {"html": str(folder / "report.html"), "json": str(folder / "report.json"), "md": str(folder / "report.md")}
    _atomic_write(Path(files["json"]), json.dumps(document.to_dict(), indent=1, default=str))
    _atomic_write(Path(files["md"]), render_markdown(document))
    _atomic_write(Path(files["html"]), render_html(document))
    return ReportResult(files=files, headline=document.headline, accepted=document.accepted,
                        acceptance=document.acceptance, notes=document.notes)
