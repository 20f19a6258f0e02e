"""Find GPU-specific lines in non-Python files: requirements, Dockerfiles, shell scripts, CUDA sources.

These are matched line by line with the rules' regular expressions (``requirement``, ``dockerfile``, ``shell``,
``env``) after dropping comment lines, so a commented-out ``# FROM nvidia/cuda`` is not a finding. CUDA
sources (and any file a ``file_glob`` names) give one file-level finding.
"""

from __future__ import annotations

import fnmatch
import re

from modelyard.migrate.code.findings import FileResult, Finding, make_snippet
from modelyard.migrate.code.rules import Rule, RuleSet
from modelyard.migrate.code.scan_python import split_lines

_ENV_ASSIGN = re.compile(r"(?:^|[\s;&|(])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
_ENV_EXPORT = re.compile(r"\bexport\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:$|;)")
_DOCKER_ENV = re.compile(r"^\s*(?:ENV|ARG)\s+(.*)$", re.IGNORECASE)
_DOCKER_ENV_NAME = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?:=|\s|$)")
_COMMENT_TAIL = re.compile(r"\s+#.*$")

# which regex families each file kind is matched against
_KIND_FAMILIES = {
    "requirements": ("requirement",),
    "dockerfile": ("dockerfile", "shell"),
    "shell": ("shell",),
    "cuda": (),
}


class _Collector:
    def __init__(self, rules: RuleSet, rel: str, lines: list[str]):
        self.rules = rules
        self.rel = rel
        self.lines = lines
        self.findings: list[Finding] = []
        self._seen: set[tuple[str, int]] = set()

    def add(self, rule: Rule, line: int, column: int, api: str, end_column: int | None = None) -> None:
        if (rule.id, line) in self._seen:
            return
        self._seen.add((rule.id, line))
        self.findings.append(
            Finding(self.rel, line, column, line, end_column or column, rule.id, api,
                    rule.status_for(self.rules.target) or "", make_snippet(self.lines, line), "line")
        )


def _code_part(line: str, kind: str) -> str:
    """The line without comments; empty for a comment line."""
    stripped = line.lstrip()
    if stripped.startswith("#"):
        return ""
    if kind in ("shell", "requirements", "dockerfile"):
        return _COMMENT_TAIL.sub("", line)
    return line


def scan_text(rules: RuleSet, rel: str, kind: str, text: str) -> FileResult:
    """Scan one non-Python file of ``kind`` (requirements, dockerfile, shell, cuda)."""
    lines = split_lines(text)
    out = _Collector(rules, rel, lines)
    name = rel.rsplit("/", 1)[-1]
    for pattern, rule in rules.file_globs:
        if fnmatch.fnmatchcase(name, pattern):
            out.add(rule, 1, 1, name)
    families = _KIND_FAMILIES.get(kind, ())
    env_rules = rules.regex_rules.get("env", ())
    for number, raw in enumerate(lines, start=1):
        code = _code_part(raw, kind)
        if not code.strip():
            continue
        for family in families:
            for pattern, rule in rules.regex_rules.get(family, ()):
                match = pattern.search(code)
                if match:
                    out.add(rule, number, match.start() + 1, match.group(0).strip(), match.end() + 1)
        if env_rules and kind in ("shell", "dockerfile"):
            for env_name, column in _env_names(code, kind):
                for pattern, rule in env_rules:
                    if pattern.search(env_name):
                        out.add(rule, number, column, env_name, column + len(env_name))
    out.findings.sort(key=lambda f: (f.line, f.column, f.rule))
    return FileResult(rel, kind, len(lines), tuple(out.findings))


def _env_names(code: str, kind: str) -> list[tuple[str, int]]:
    """Environment variables a line sets: ``X=1 cmd``, ``export X=1``, ``export X``, Dockerfile ``ENV X=1``."""
    found = [(m.group(1), m.start(1) + 1) for m in _ENV_ASSIGN.finditer(code)]
    found += [(m.group(1), m.start(1) + 1) for m in _ENV_EXPORT.finditer(code)]
    if kind == "dockerfile":
        docker = _DOCKER_ENV.match(code)
        if docker:
            offset = docker.start(1)
            found += [(m.group(1), offset + m.start(1) + 1) for m in _DOCKER_ENV_NAME.finditer(docker.group(1))
                      if m.group(1).isupper()]
    return found
