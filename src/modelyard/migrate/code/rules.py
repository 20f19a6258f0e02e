"""Migration rules: what GPU-specific code looks like, and what to do about it on each target.

Rules are data. Each ``rules/<family>.yaml`` file holds one family (device placement, mixed precision, ...);
a file or folder passed as ``extra`` adds or overrides rules by id, so adding a rule is never a code change.
The matching vocabulary (``call``, ``attribute``, ``method``, ``string_device``, ``requirement``, ...) is
documented in ``docs/migrate-code.md`` and validated here, so a typo in a rule file fails at load time with the
file and rule named.

Example::

    rules = load_rules()
    rule = rules.get("cuda-synchronize")
    rule.status_for("npu")          # -> "auto"
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelyard.core.errors import InvalidInput, NotFound

TARGETS: tuple[str, ...] = ("any", "npu", "cpu", "xpu", "mps", "rocm")
STATUSES: tuple[str, ...] = ("supported", "auto", "manual", "unsupported")
LEVELS: tuple[str, ...] = ("low", "medium", "high")
RULES_DIR = Path(__file__).with_name("rules")
TARGETS_FILE = RULES_DIR / "_targets.yaml"

Target = Literal["any", "npu", "cpu", "xpu", "mps", "rocm"]
Status = Literal["supported", "auto", "manual", "unsupported"]


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return value


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
    return value


class Effort(BaseModel):
    """How much a person needs for one site: a level and an hours range (low, high)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["low", "medium", "high"]
    hours: tuple[float, float]

    @field_validator("hours")
    @classmethod
    def _ordered(cls, hours: tuple[float, float]) -> tuple[float, float]:
        if hours[0] < 0 or hours[0] > hours[1]:
            raise ValueError(f"hours must be [low, high] with 0 <= low <= high, got {list(hours)}")
        return hours


class ArgumentMatch(BaseModel):
    """An argument of a call: by keyword and/or position, optionally with a literal value or value regex.

    Without ``value``/``value_regex`` the argument only has to be present. Values are followed through
    simple variable assignments in the module (``backend = "nccl"; init_process_group(backend)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    call: list[str] = Field(default_factory=list)
    method: list[str] = Field(default_factory=list)
    keyword: str | None = None
    position: int | None = None
    value: str | bool | int | float | None = None
    value_regex: str | None = None

    _as_lists = field_validator("call", "method", mode="before")(_as_list)
    _regex = field_validator("value_regex")(_check_regex)

    @model_validator(mode="after")
    def _where(self) -> ArgumentMatch:
        if self.keyword is None and self.position is None:
            raise ValueError("an argument matcher needs 'keyword' and/or 'position'")
        return self


class Match(BaseModel):
    """What a rule matches. A rule matches a site when any one of its matchers does."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    call: list[str] = Field(default_factory=list)
    attribute: list[str] = Field(default_factory=list)
    import_: list[str] = Field(default_factory=list, alias="import")
    method: list[str] = Field(default_factory=list)
    member: list[str] = Field(default_factory=list)
    argument: list[ArgumentMatch] = Field(default_factory=list)
    string_device: str | None = None
    compare: str | None = None
    env: str | None = None
    command: str | None = None
    file_glob: list[str] = Field(default_factory=list)
    requirement: str | None = None
    dockerfile: str | None = None
    shell: str | None = None
    builtin: Literal["parse-error", "file-skipped", "file-decoded"] | None = None

    _as_lists = field_validator("call", "attribute", "import_", "method", "member", "file_glob", mode="before")(
        _as_list
    )
    _regexes = field_validator("string_device", "compare", "env", "command", "requirement", "dockerfile", "shell")(
        _check_regex
    )

    @field_validator("argument", mode="before")
    @classmethod
    def _arguments(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else _as_list(value)

    @model_validator(mode="after")
    def _not_empty(self) -> Match:
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError("'match' names no matcher")
        return self


class Rewrite(BaseModel):
    """How ``apply`` rewrites an ``auto`` site for one target.

    ``template`` is a Python expression that replaces the matched node. Placeholders: ``{args}`` / ``{,args}``
    (the call's arguments, the second with a leading comma when not empty), ``{kwargs}`` / ``{,kwargs}``,
    ``{receiver}`` (the object a method is called on), ``{callee}`` (the call's function, renamed),
    ``{attr}`` (last part of the matched name), ``{device}`` / ``{device_type}`` (the target's device
    expression) and ``{value}`` (the matched value's code). ``device_string: true`` rewrites a device string
    literal (``"cuda:1"`` -> the target's device). ``rename_module`` rewrites an import's module path.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    template: str | None = None
    callee: str | None = None
    device_string: bool = False
    rename_module: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Rewrite:
        chosen = [self.template is not None, self.device_string, self.rename_module is not None]
        if sum(chosen) != 1:
            raise ValueError("a rewrite needs exactly one of 'template', 'device_string', 'rename_module'")
        return self


class Rule(BaseModel):
    """One migration rule. ``status`` lists the targets it applies to; other targets ignore it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    family: str = ""
    category: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    match: Match
    status: dict[Target, Status]
    effort: Effort
    effort_by_target: dict[Target, Effort] = Field(default_factory=dict)
    message: str
    suggestion: str
    suggestion_by_target: dict[Target, str] = Field(default_factory=dict)
    precision_advice: str | None = None
    performance_advice: str | None = None
    rewrite: dict[Target, Rewrite] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if not self.status:
            raise ValueError("'status' must name at least one target")
        for target, status in self.status.items():
            if status == "auto" and target not in self.rewrite:
                raise ValueError(f"status 'auto' for target {target!r} needs a 'rewrite' for it")
        for target in self.rewrite:
            if self.status.get(target) != "auto":
                raise ValueError(f"'rewrite' for target {target!r} but its status is not 'auto'")
        if self.match.import_ and any(r.template for r in self.rewrite.values()):
            raise ValueError("an 'import' matcher can only be rewritten with 'rename_module'")
        return self

    def status_for(self, target: str) -> str | None:
        """The status on ``target``, or None when the rule does not apply there."""
        return self.status.get(target)  # type: ignore[call-overload]

    def effort_for(self, target: str) -> Effort:
        return self.effort_by_target.get(target, self.effort)  # type: ignore[call-overload]

    def suggestion_for(self, target: str) -> str:
        """The suggestion for ``target`` with any precision/performance advice appended."""
        text = self.suggestion_by_target.get(target, self.suggestion)  # type: ignore[call-overload]
        if self.precision_advice:
            text += f" Precision: {self.precision_advice}"
        if self.performance_advice:
            text += f" Performance: {self.performance_advice}"
        return text


class TargetProfile(BaseModel):
    """How a target spells its device in rewritten code (``rules/_targets.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    device: str
    device_type: str
    imports: list[str] = Field(default_factory=list)
    helper: str | None = None


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    family: str
    description: str = ""
    rules: list[dict[str, Any]]


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


@dataclass(frozen=True)
class _NameIndex:
    """Exact names in a dict, glob patterns tried longest first (the most specific rule wins).

    Glob patterns are compiled once and screened by their literal prefix; answers are cached per name, since a
    large tree asks about the same few thousand qualified names over and over.
    """

    exact: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    globs: tuple[tuple[str, re.Pattern, Rule], ...] = ()
    _cache: dict[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(cls, pairs: list[tuple[str, Rule]]) -> _NameIndex:
        exact: dict[str, list[Rule]] = {}
        globs = []
        for pattern, rule in pairs:
            if _is_glob(pattern):
                prefix = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
                globs.append((prefix, re.compile(fnmatch.translate(pattern)), rule, len(pattern)))
            else:
                exact.setdefault(pattern, []).append(rule)
        globs.sort(key=lambda item: -item[3])
        return cls({k: tuple(v) for k, v in exact.items()}, tuple(g[:3] for g in globs))

    def lookup(self, name: str) -> tuple[Rule, ...]:
        """Rules for ``name``: every exact match, else the most specific glob match."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        found = self.exact.get(name, ())
        if not found:
            for prefix, pattern, rule in self.globs:
                if name.startswith(prefix) and pattern.match(name):
                    found = (rule,)
                    break
        if len(self._cache) < 100_000:
            self._cache[name] = found
        return found


@dataclass(frozen=True)
class RuleSet:
    """Rules loaded for one target, indexed by matcher kind for fast scanning."""

    target: str
    rules: tuple[Rule, ...]
    profile: TargetProfile
    by_id: dict[str, Rule]
    calls: _NameIndex
    attributes: _NameIndex
    imports: _NameIndex
    methods: dict[str, tuple[Rule, ...]]
    members: dict[str, tuple[Rule, ...]]
    arguments: tuple[tuple[ArgumentMatch, Rule], ...]
    regex_rules: dict[str, tuple[tuple[re.Pattern, Rule], ...]]
    file_globs: tuple[tuple[str, Rule], ...]
    builtins: dict[str, Rule]

    def get(self, rule_id: str) -> Rule:
        try:
            return self.by_id[rule_id]
        except KeyError:
            raise NotFound(f"unknown rule {rule_id!r}") from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read rule file {path}: {exc}") from exc


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<rule>'}: {e['msg']}" for e in exc.errors())


def _load_rule_file(path: Path) -> list[Rule]:
    data = _read_yaml(path)
    try:
        parsed = _RuleFile.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"rule file {path}: {_errors(exc)}") from exc
    rules = []
    for position, raw in enumerate(parsed.rules):
        name = raw.get("id", f"#{position + 1}") if isinstance(raw, dict) else f"#{position + 1}"
        try:
            rules.append(Rule.model_validate({**raw, "family": parsed.family}))
        except ValidationError as exc:
            raise InvalidInput(f"rule file {path}, rule {name}: {_errors(exc)}") from exc
    return rules


def rule_files(extra: tuple[str, ...] = ()) -> list[Path]:
    """The built-in rule files, then every ``*.yaml`` in ``extra`` (files or folders), in load order."""
    files = sorted(p for p in RULES_DIR.glob("*.yaml") if not p.name.startswith("_"))
    for item in extra:
        path = Path(item).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.glob("*.y*ml") if not p.name.startswith("_")))
        elif path.is_file():
            files.append(path)
        else:
            raise NotFound(f"rules path not found: {item}")
    return files


@lru_cache(maxsize=8)
def load_all_rules(extra: tuple[str, ...] = ()) -> tuple[Rule, ...]:
    """Every rule from the built-in files and ``extra``; a later rule with the same id replaces the earlier."""
    by_id: dict[str, Rule] = {}
    for path in rule_files(extra):
        for rule in _load_rule_file(path):
            by_id[rule.id] = rule
    return tuple(by_id.values())


@lru_cache(maxsize=1)
def target_profiles() -> dict[str, TargetProfile]:
    data = _read_yaml(TARGETS_FILE)
    try:
        profiles = {name: TargetProfile.model_validate(value) for name, value in (data or {}).items()}
    except ValidationError as exc:
        raise InvalidInput(f"{TARGETS_FILE}: {_errors(exc)}") from exc
    missing = set(TARGETS) - set(profiles)
    if missing:
        raise InvalidInput(f"{TARGETS_FILE}: no profile for target(s) {', '.join(sorted(missing))}")
    return profiles


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise InvalidInput(f"--target: unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    return target


@lru_cache(maxsize=16)
def load_rules(target: str = "any", extra: tuple[str, ...] = ()) -> RuleSet:
    """Load and index the rules that apply to ``target``.

    Args:
        target: one of ``TARGETS``. Default ``any``.
        extra: extra rule files or folders (``--rules``); their rules add to or replace built-ins by id.

    Returns:
        A ``RuleSet``; raises ``InvalidInput`` naming the file and rule when a rule file is malformed.
    """
    check_target(target)
    rules = tuple(r for r in load_all_rules(tuple(extra)) if r.status_for(target) is not None)
    calls, attributes, imports, arguments, file_globs = [], [], [], [], []
    methods: dict[str, list[Rule]] = {}
    members: dict[str, list[Rule]] = {}
    regex_rules: dict[str, list[tuple[re.Pattern, Rule]]] = {}
    builtins: dict[str, Rule] = {}
    for rule in rules:
        m = rule.match
        calls += [(p, rule) for p in m.call]
        attributes += [(p, rule) for p in m.attribute]
        imports += [(p, rule) for p in m.import_]
        arguments += [(a, rule) for a in m.argument]
        file_globs += [(p, rule) for p in m.file_glob]
        for name in m.method:
            methods.setdefault(name, []).append(rule)
        for name in m.member:
            members.setdefault(name, []).append(rule)
        for kind in ("string_device", "compare", "env", "command", "requirement", "dockerfile", "shell"):
            pattern = getattr(m, kind)
            if pattern:
                regex_rules.setdefault(kind, []).append((re.compile(pattern), rule))
        if m.builtin:
            builtins[m.builtin] = rule
    return RuleSet(
        target=target,
        rules=rules,
        profile=target_profiles()[target],
        by_id={r.id: r for r in rules},
        calls=_NameIndex.build(calls),
        attributes=_NameIndex.build(attributes),
        imports=_NameIndex.build(imports),
        methods={k: tuple(v) for k, v in methods.items()},
        members={k: tuple(v) for k, v in members.items()},
        arguments=tuple(arguments),
        regex_rules={k: tuple(v) for k, v in regex_rules.items()},
        file_globs=tuple(file_globs),
        builtins=builtins,
    )
