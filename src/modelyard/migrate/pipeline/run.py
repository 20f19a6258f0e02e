"""``modelyard migrate run MIGRATION.yaml``: the whole migration as phases with saved state.

Phases, in order: analyze -> apply -> convert -> coverage -> compare -> optimize -> package -> report
(``phases`` implements them). Each phase has an *input hash*: its slice of MIGRATION.yaml plus the input
hashes of the phases it depends on (and the content of the source folder, model spec, data). ``<out>/state.json``
records each phase's status and hash after every step, atomically, so:

* a failed or killed run resumes at the phase that did not finish (a phase left ``running`` counts as not done);
* a changed input reruns only the phases that depend on it (changing ``goals.min_speedup`` reruns ``report``
  only; changing the model reruns convert, coverage, compare, optimize, package and report, not analyze/apply).

Example::

    result = run_migration("examples/migration.yaml", out_dir=Path("migration-out"))
    print(result)                 # phases, headline numbers, report path
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from modelyard.core.errors import ModelyardError
from modelyard.migrate.pipeline.config import MigrationConfig, load_migration
from modelyard.migrate.pipeline.results import Headline, PhaseResult, Record, ReportResult, result_from_dict
from modelyard.migrate.pipeline.state import (
    DEPENDENCIES,
    PHASES,
    PhaseState,
    load_state,
    phase_hashes,
    python_path,
    save_state,
    write_json,
)

RUN_SCHEMA = "modelyard.migration-run/1"


class PhaseFailed(ModelyardError):
    """A phase raised; the state says which, and a rerun resumes there."""

    code = "phase_failed"
    status = 500


@dataclass
class PhaseContext:
    """What a phase sees: the config, its folder, earlier phases' results, progress and the pass cache."""

    config: MigrationConfig
    out_dir: Path
    cache_dir: Path
    results: dict[str, PhaseResult]
    progress: Callable[[float, str], None]

    def folder(self, phase: str) -> Path:
        path = self.out_dir / phase
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class PhaseRow(Record):
    """What happened to one phase in this run: run (``status``) or ``reused`` from an earlier one."""

    name: str
    status: str
    reused: bool
    seconds: float | None
    summary: str


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``run_migration``; ``bool()`` is True when every acceptance goal passed. ``headline`` is
    None when the run stopped before the report."""

    name: str
    out_dir: str
    phases: tuple[PhaseRow, ...]
    headline: Headline | None
    reports: dict
    accepted: bool
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.accepted

    def to_dict(self) -> dict:
        return {
            "schema": RUN_SCHEMA,
            "name": self.name,
            "out_dir": self.out_dir,
            "phases": [p.to_dict() for p in self.phases],
            "headline": self.headline.to_dict() if self.headline else {},
            "reports": self.reports,
            "accepted": self.accepted,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
        }

    def __str__(self) -> str:
        lines = [f"migration {self.name}: {'ACCEPTED' if self.accepted else 'NOT ACCEPTED'}"]
        for phase in self.phases:
            state = "reused" if phase.reused else phase.status
            lines.append(f"  {phase.name:<9} {state:<8} {phase.summary}")
        h = self.headline or Headline(None, None, None, None, None)
        lines.append(f"readiness {h.readiness_score}/100, compare verdict {h.verdict}, "
                     f"speedup {h.speedup}x at {h.accuracy}")
        lines.append(f"report: {self.reports['html'] if self.reports else None}")
        return "\n".join(lines)


# -- running --------------------------------------------------------------------------------------------------

def run_migration(
    path: str | Path,
    out_dir: Path | None = None,
    *,
    cache_dir: Path | None = None,
    force: tuple[str, ...] = (),
    progress: Callable[[float, str], None] | None = None,
    stop_after: str | None = None,
) -> RunResult:
    """Run (or resume) the migration described by ``path``.

    Args:
        path: MIGRATION.yaml.
        out_dir: where phases write their folders, ``state.json`` and the reports. Default ``./migration-<name>``.
        cache_dir: pass and result cache. Default ``$MODELYARD_HOME/cache``.
        force: phases to rerun even when their inputs did not change (their dependants rerun too).
        progress: optional ``callable(fraction, message)``.
        stop_after: run up to and including this phase only.

    Raises:
        PhaseFailed: a phase failed; its error is in ``state.json`` and a rerun resumes at it.
    """
    from modelyard.core.errors import InvalidInput
    from modelyard.core.settings import default_home
    from modelyard.migrate.pipeline.phases import PHASE_FUNCTIONS, summarize

    started = time.perf_counter()
    config = load_migration(path)
    for name in (*force, *([stop_after] if stop_after else [])):
        if name not in PHASES:
            raise InvalidInput(f"unknown phase {name!r}; phases are {', '.join(PHASES)}")
    out = Path(out_dir or f"migration-{config.name}").expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir else default_home() / "cache"
    report = progress or (lambda fraction, message: None)
    hashes = phase_hashes(config)
    state = load_state(out)
    results: dict[str, PhaseResult] = {}
    rows: list[PhaseRow] = []
    rerun: set[str] = set(force)
    last = PHASES.index(stop_after) if stop_after else len(PHASES) - 1
    for index, phase in enumerate(PHASES[: last + 1]):
        entry = state.phases.get(phase)
        result_file = out / phase / "result.json"
        deps_rerun = any(dep in rerun for dep in DEPENDENCIES[phase][1])
        reusable = (entry is not None and entry.finished_ok and entry.input_hash == hashes[phase]
                    and phase not in rerun and not deps_rerun)
        saved = _saved_result(phase, result_file) if reusable else None
        if saved is not None:
            results[phase] = saved
            rows.append(PhaseRow(phase, entry.status, True, entry.seconds, entry.summary or ""))
            report((index + 1) / len(PHASES), f"{phase}: unchanged, reused")
            continue
        rerun.add(phase)
        running = PhaseState("running", hashes[phase], started=time.time())
        state = state.with_phase(phase, running)
        save_state(out, state)
        ctx = PhaseContext(
            config,
            out,
            cache,
            results,
            lambda f, m, i=index, p=phase: report((i + min(max(f, 0.0), 1.0)) / len(PHASES), f"{p}: {m}"),
        )
        phase_started = time.perf_counter()
        try:
            with python_path(config):
                result = PHASE_FUNCTIONS[phase](ctx)
        except ModelyardError as exc:
            failed = replace(running, status="failed", error=str(exc), seconds=time.perf_counter() - phase_started)
            save_state(out, state.with_phase(phase, failed))
            raise PhaseFailed(f"phase {phase} failed: {exc} (fix it and rerun: finished phases are reused)") from exc
        status = "skipped" if result.skipped else "done"
        write_json(result_file, result.to_dict())
        results[phase] = result
        summary = summarize(phase, result)
        seconds = time.perf_counter() - phase_started
        finished = replace(running, status=status, seconds=round(seconds, 2), finished=time.time(), summary=summary)
        state = state.with_phase(phase, finished)
        save_state(out, state)
        rows.append(PhaseRow(phase, status, False, round(seconds, 2), summary))
    final = results.get("report")
    if not isinstance(final, ReportResult):  # stopped before the report
        return RunResult(name=config.name, out_dir=str(out), phases=tuple(rows), headline=None, reports={},
                         accepted=False, seconds=time.perf_counter() - started)
    return RunResult(
        name=config.name, out_dir=str(out), phases=tuple(rows), headline=final.headline, reports=final.files,
        accepted=final.accepted, seconds=time.perf_counter() - started, notes=final.notes,
    )


def _saved_result(phase: str, path: Path) -> PhaseResult | None:
    """A finished phase's ``result.json``, or None when it is missing or does not fit (the phase then reruns)."""
    try:
        return result_from_dict(phase, json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # ResultError is a ValueError, as is broken JSON
        return None
