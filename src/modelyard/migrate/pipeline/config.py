"""MIGRATION.yaml: one file describing a migration project (pydantic; every error names the field).

Example (``examples/migration.yaml``)::

    name: gpu-project
    source: gpu_project              # code folder to analyse (and rewrite); optional
    code_target: any                 # analysis rules' target: any, npu, cpu, xpu, mps, rocm
    apply: true                      # write a migrated copy of the code
    model: gpu_project_model.yaml    # a ModelSpec file, or an inline ModelSpec mapping
    python_path: [gpu_project, .]    # folders the model's entrypoint imports from
    reference: torch:cpu             # where the model runs today (the reference for precision)
    target: cpu                      # device (cpu, cuda, npu, gpu) or one backend:device
    data: null                       # validation samples (.npz, .npy folder, image folder); default seeded random
    goals: {max_accuracy_drop: 0.01, min_speedup: 1.5, max_latency_ms: 50, min_readiness: 40, min_coverage: 0.9}
    compare: {samples: 16, layerwise: true}
    optimize: {objective: latency, batch_size: 1, budget_s: 180, samples: 128}   # OptimizeSearch fields
    benchmark: {batch_sizes: [1, 8]}
    owners: {default: customer, categories: {build: platform team}}

Relative paths resolve against the file's folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.migrate.model.specs import BenchmarkSizes, CompareSampling
from modelyard.migrate.optimize.spec import OptimizeSearch

SCHEMA = "modelyard.migration-config/1"


class Goals(BaseModel):
    """Acceptance goals; each one set becomes a line of the acceptance checklist.

    Args:
        max_accuracy_drop: largest allowed loss of the task metric (0.01 = 1 point of top-1 agreement). Default 0.01.
        min_speedup: the chosen configuration vs the baseline. Default none.
        max_latency_ms: p50 latency of the chosen configuration at the optimised batch size. Default none.
        min_throughput: samples/s of the chosen configuration. Default none.
        min_readiness: code readiness score (0-100) after the automatic rewrite. Default none.
        min_coverage: fraction of graph nodes the target runs natively. Default none.
        compare_verdict: worst acceptable verdict of the fp32 precision compare (pass/warn/fail). Default warn.
    """

    model_config = ConfigDict(extra="forbid")

    max_accuracy_drop: float = Field(default=0.01, ge=0, lt=1)
    min_speedup: float | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, gt=0)
    min_throughput: float | None = Field(default=None, gt=0)
    min_readiness: float | None = Field(default=None, ge=0, le=100)
    min_coverage: float | None = Field(default=None, ge=0, le=1)
    compare_verdict: Literal["pass", "warn", "fail"] = "warn"


class CompareSettings(CompareSampling):
    """The ``compare`` section: ``CompareSampling``'s fields plus ``backend`` (default: the target's first backend).

    The pipeline compares layer by layer on 16 samples by default (the standalone command: 8, whole model only),
    because its report names the first diverging layer.
    """

    samples: int = Field(default=16, ge=1)
    layerwise: bool = True
    backend: str | None = None


# the ``optimize`` and ``benchmark`` sections are the action specs' own sub-models, so their defaults are the
# commands' defaults
OptimizeSettings = OptimizeSearch
BenchmarkSettings = BenchmarkSizes


class Owners(BaseModel):
    """Who owns the manual items left: ``default`` and per finding category (``build``, ``distributed``...)."""

    model_config = ConfigDict(extra="forbid")

    default: str = "customer"
    categories: dict[str, str] = Field(default_factory=dict)

    def owner_of(self, category: str) -> str:
        return self.categories.get(category, self.default)


class MigrationConfig(BaseModel):
    """A migration project. See the module docstring for the file format."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    source: str | None = None
    code_target: Literal["any", "npu", "cpu", "xpu", "mps", "rocm"] = "any"
    apply: bool = True
    model: str | dict[str, Any]
    python_path: list[str] = Field(default_factory=list)
    reference: str = "torch:cpu"
    target: str = "cpu"
    data: str | None = None
    calibration: str | None = None
    seed: int = 0
    goals: Goals = Field(default_factory=Goals)
    compare: CompareSettings = Field(default_factory=CompareSettings)
    optimize: OptimizeSettings = Field(default_factory=OptimizeSettings)
    benchmark: BenchmarkSettings = Field(default_factory=BenchmarkSettings)
    owners: Owners = Field(default_factory=Owners)

    _base_dir: Path = Path.cwd()

    def resolve(self, value: str | None) -> Path | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self._base_dir / path).resolve()

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def model_spec(self):
        """The ModelSpec (file or inline), with relative paths resolved."""
        from modelyard.runtime.spec import load_spec, parse_spec

        if isinstance(self.model, str):
            path = self.resolve(self.model)
            if not path.is_file():
                raise NotFound(f"migration.model: spec file {path} does not exist")
            try:
                return load_spec(path)
            except InvalidInput as exc:
                raise InvalidInput(f"migration.model ({path.name}): {exc}") from None
        try:
            return parse_spec(self.model, base_dir=self._base_dir)
        except InvalidInput as exc:
            raise InvalidInput(f"migration.model: {exc}") from None

    def digest(self, *fields: str) -> str:
        """sha256 of the named top-level fields' JSON (the config slice a phase depends on)."""
        data = self.model_dump(mode="json")
        picked = {name: data.get(name) for name in fields}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


def _field_path(loc: tuple) -> str:
    out = "migration"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_migration(data: Any, base_dir: Path) -> MigrationConfig:
    """Validate a mapping as a MigrationConfig; errors are ``InvalidInput`` naming each bad field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"MIGRATION.yaml must be a mapping, got {type(data).__name__}")
    try:
        config = MigrationConfig.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_field_path(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        raise InvalidInput("invalid MIGRATION.yaml: " + "; ".join(problems)) from None
    config._base_dir = Path(base_dir).resolve()
    if config.source is not None and not config.resolve(config.source).exists():
        raise InvalidInput(f"invalid MIGRATION.yaml: migration.source: {config.resolve(config.source)} does not exist")
    for index, entry in enumerate(config.python_path):
        if not config.resolve(entry).is_dir():
            raise InvalidInput(f"invalid MIGRATION.yaml: migration.python_path[{index}]: {config.resolve(entry)} "
                               "is not a folder")
    for name in ("data", "calibration"):
        value = getattr(config, name)
        if value is not None and not config.resolve(value).exists():
            raise InvalidInput(f"invalid MIGRATION.yaml: migration.{name}: {config.resolve(value)} does not exist")
    return config


def load_migration(path: str | Path) -> MigrationConfig:
    """Read MIGRATION.yaml (or .json); relative paths resolve against its folder."""
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFound(f"migration file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{p.name}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
    return parse_migration(data, p.resolve().parent)
