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

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.errors import ModelyardError
from modelyard.migrate.pipeline.config import MigrationConfig, load_migration

STATE_SCHEMA = "modelyard.migration-state/1"
RUN_SCHEMA = "modelyard.migration-run/1"
PHASES = ("analyze", "apply", "convert", "coverage", "compare", "optimize", "package", "report")
# phase -> (MIGRATION.yaml fields it reads, phases it depends on, extra inputs hashed by content)
DEPENDENCIES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "analyze": (("source", "code_target"), (), ("source",)),
    "apply": (("apply",), ("analyze",), ()),
    "convert": (("model", "python_path"), (), ("model",)),
    "coverage": (("target",), ("convert",), ()),
    "compare": (("reference", "target", "compare", "seed"), ("convert",), ("data",)),
    "optimize": (("target", "optimize", "benchmark", "seed", "calibration"), ("convert",), ("data", "calibration")),
    "package": (("name",), ("apply", "optimize"), ()),
    "report": (("name", "goals", "owners"), ("analyze", "apply", "convert", "coverage", "compare", "optimize",
                                             "package"), ()),
}
# goals that change how a phase judges, not only the checklist
_GOAL_FIELDS = {"optimize": ("max_accuracy_drop",)}


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
    results: dict[str, dict]
    progress: Callable[[float, str], None]

    def folder(self, phase: str) -> Path:
        path = self.out_dir / phase
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class RunResult:
    """The outcome of ``run_migration``; ``bool()`` is True when every acceptance goal passed."""

    name: str
    out_dir: str
    phases: tuple[dict, ...]
    headline: dict
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
            "phases": [dict(p) for p in self.phases],
            "headline": self.headline,
            "reports": self.reports,
            "accepted": self.accepted,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 2),
        }

    def __str__(self) -> str:
        lines = [f"migration {self.name}: {'ACCEPTED' if self.accepted else 'NOT ACCEPTED'}"]
        for phase in self.phases:
            state = "reused" if phase["reused"] else phase["status"]
            lines.append(f"  {phase['name']:<9} {state:<8} {phase.get('summary', '')}")
        h = self.headline
        lines.append(f"readiness {h.get('readiness_score')}/100, compare verdict {h.get('verdict')}, "
                     f"speedup {h.get('speedup')}x at {h.get('accuracy')}")
        lines.append(f"report: {self.reports.get('html')}")
        return "\n".join(lines)


# -- hashing and state ----------------------------------------------------------------------------------------

def tree_digest(path: Path | None) -> str:
    """sha256 over the names and bytes of every file under ``path`` (or the file itself); caches skipped."""
    if path is None or not path.exists():
        return "none"
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*")
        if p.is_file() and not any(part in ("__pycache__", ".git", ".modelyard-migrate") for part in p.parts)
    )
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _extra_digest(config: MigrationConfig, name: str) -> str:
    if name == "source":
        return tree_digest(config.resolve(config.source))
    if name == "model":
        with python_path(config):
            spec_hash = config.model_spec().content_hash()
        code = "".join(tree_digest(config.resolve(p)) for p in config.python_path)
        return hashlib.sha256((spec_hash + code).encode()).hexdigest()
    if name in ("data", "calibration"):
        return tree_digest(config.resolve(getattr(config, name)))
    raise KeyError(name)


def phase_hashes(config: MigrationConfig) -> dict[str, str]:
    """Each phase's input hash (see the module docstring)."""
    hashes: dict[str, str] = {}
    extras: dict[str, str] = {}
    for phase in PHASES:
        fields, deps, inputs = DEPENDENCIES[phase]
        digest = hashlib.sha256(phase.encode())
        digest.update(config.digest(*fields).encode())
        goals = config.goals.model_dump(mode="json")
        digest.update(json.dumps({g: goals[g] for g in _GOAL_FIELDS.get(phase, ())}, sort_keys=True).encode())
        for name in inputs:
            if name not in extras:
                extras[name] = _extra_digest(config, name)
            digest.update(extras[name].encode())
        for dep in deps:
            digest.update(hashes[dep].encode())
        hashes[phase] = digest.hexdigest()
    return hashes


def load_state(out_dir: Path) -> dict:
    path = out_dir / "state.json"
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema") == STATE_SCHEMA:
                return data
        except ValueError:
            pass
    return {"schema": STATE_SCHEMA, "phases": {}}


def save_state(out_dir: Path, state: dict) -> None:
    path = out_dir / "state.json"
    tmp = path.with_name("state.json.tmp")
    tmp.write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


@contextmanager
def python_path(config: MigrationConfig) -> Iterator[None]:
    """Put the config's ``python_path`` folders first on ``sys.path`` while a phase builds the model."""
    entries = [str(config.resolve(p)) for p in config.python_path]
    added = [e for e in entries if e not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)


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
    results: dict[str, dict] = {}
    rows: list[dict] = []
    rerun: set[str] = set(force)
    last = PHASES.index(stop_after) if stop_after else len(PHASES) - 1
    for index, phase in enumerate(PHASES[: last + 1]):
        entry = state["phases"].get(phase, {})
        result_file = out / phase / "result.json"
        deps_rerun = any(dep in rerun for dep in DEPENDENCIES[phase][1])
        if (entry.get("status") in ("done", "skipped") and entry.get("input_hash") == hashes[phase]
                and result_file.is_file() and phase not in rerun and not deps_rerun):
            results[phase] = json.loads(result_file.read_text(encoding="utf-8"))
            rows.append({"name": phase, "status": entry["status"], "reused": True, "seconds": entry.get("seconds"),
                         "summary": entry.get("summary", "")})
            report((index + 1) / len(PHASES), f"{phase}: unchanged, reused")
            continue
        rerun.add(phase)
        state["phases"][phase] = {"status": "running", "input_hash": hashes[phase], "started": time.time()}
        save_state(out, state)
        ctx = PhaseContext(config, out, cache, results,
                           lambda f, m, i=index, p=phase: report((i + min(max(f, 0.0), 1.0)) / len(PHASES), f"{p}: {m}"))
        phase_started = time.perf_counter()
        try:
            with python_path(config):
                result = PHASE_FUNCTIONS[phase](ctx)
        except ModelyardError as exc:
            state["phases"][phase].update(status="failed", error=str(exc), seconds=time.perf_counter() - phase_started)
            save_state(out, state)
            raise PhaseFailed(f"phase {phase} failed: {exc} (fix it and rerun: finished phases are reused)") from exc
        status = "skipped" if result.get("skipped") is True else "done"
        _write_json(result_file, result)
        results[phase] = result
        summary = summarize(phase, result)
        seconds = time.perf_counter() - phase_started
        state["phases"][phase].update(status=status, seconds=round(seconds, 2), finished=time.time(), summary=summary)
        save_state(out, state)
        rows.append({"name": phase, "status": status, "reused": False, "seconds": round(seconds, 2), "summary": summary})
    final = results.get("report", {})
    return RunResult(
        name=config.name, out_dir=str(out), phases=tuple(rows), headline=final.get("headline", {}),
        reports=final.get("files", {}), accepted=bool(final.get("accepted")), seconds=time.perf_counter() - started,
        notes=tuple(final.get("notes", [])),
    )
