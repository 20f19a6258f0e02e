"""The migration pipeline's saved state: the phases and what each depends on, every phase's input hash, and
``<out>/state.json`` read and written atomically. ``run`` decides from it which phases to rerun; the report quotes
the input hashes."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.migrate.pipeline.config import MigrationConfig
from modelyard.migrate.pipeline.results import Record, ResultError

STATE_SCHEMA = "modelyard.migration-state/1"
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


def input_digest(config: MigrationConfig, name: str) -> str:
    """The content hash of one of the inputs a phase reads beyond MIGRATION.yaml: source, model, data, calibration."""
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
                extras[name] = input_digest(config, name)
            digest.update(extras[name].encode())
        for dep in deps:
            digest.update(hashes[dep].encode())
        hashes[phase] = digest.hexdigest()
    return hashes


_OPTIONAL = {"optional": True}


@dataclass(frozen=True)
class PhaseState(Record):
    """One phase's line in ``state.json``: ``running`` (or left so by a kill), ``done``, ``skipped`` or ``failed``,
    with the input hash it ran for."""

    status: str
    input_hash: str
    started: float | None = field(default=None, metadata=_OPTIONAL)
    seconds: float | None = field(default=None, metadata=_OPTIONAL)
    finished: float | None = field(default=None, metadata=_OPTIONAL)
    summary: str | None = field(default=None, metadata=_OPTIONAL)
    error: str | None = field(default=None, metadata=_OPTIONAL)

    @property
    def finished_ok(self) -> bool:
        return self.status in ("done", "skipped")


@dataclass(frozen=True)
class MigrationState:
    """``<out>/state.json``: each phase's ``PhaseState``."""

    phases: Mapping[str, PhaseState] = field(default_factory=dict)

    def with_phase(self, phase: str, state: PhaseState) -> MigrationState:
        return MigrationState({**self.phases, phase: state})

    def to_dict(self) -> dict:
        return {"schema": STATE_SCHEMA, "phases": {name: entry.to_dict() for name, entry in self.phases.items()}}

    @classmethod
    def from_dict(cls, data: Mapping) -> MigrationState:
        """The state in ``data``; an entry that does not fit is dropped, so that phase runs again."""
        if not isinstance(data, Mapping) or data.get("schema") != STATE_SCHEMA or not isinstance(data.get("phases"),
                                                                                                  Mapping):
            return cls()
        phases = {}
        for name, entry in data["phases"].items():
            try:
                phases[name] = PhaseState.from_dict(entry)
            except (ResultError, TypeError):
                continue
        return cls(phases)


def load_state(out_dir: Path) -> MigrationState:
    """``<out>/state.json``, or an empty state when it is missing, unreadable or of another schema."""
    path = out_dir / "state.json"
    if path.is_file():
        try:
            return MigrationState.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except ValueError:
            pass
    return MigrationState()


def save_state(out_dir: Path, state: MigrationState) -> None:
    path = out_dir / "state.json"
    tmp = path.with_name("state.json.tmp")
    tmp.write_text(json.dumps(state.to_dict(), indent=1, default=str), encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, data: dict) -> None:
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
