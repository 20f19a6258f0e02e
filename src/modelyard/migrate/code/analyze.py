"""Migration readiness analysis: scan a project for GPU-specific code and score how ready it is for a target.

``analyze_path(PATH, target)`` walks a folder, file or archive safely (``sources``), scans Python files with
``ast`` (``scan_python``) and requirements/Dockerfiles/shell scripts/CUDA sources line by line
(``scan_text``) against the rules (``rules``), on all cores for large trees, and returns a frozen
``Analysis`` whose ``to_dict()`` is the documented ``modelyard.analysis/1`` JSON.

Scores (documented in docs/migrate-code.md):

* effort: a ``manual``/``unsupported`` site costs its rule's hours range; further sites of the same rule cost
  ``REPEAT_FACTOR`` of it each (the fix is learnt once, then repeated). An ``auto`` site costs
  ``AUTO_REVIEW_HOURS`` to review; ``supported`` costs nothing.
* readiness_score = round(100 * K / (K + P)), K = 10 + python_lines / 250, P = sum of per-rule penalties with
  the same repeat discount (auto 0.05; manual low/medium/high 1/3/8; unsupported 2/5/12).

Example::

    analysis = analyze_path("examples/gpu_project", target="any")
    print(analysis)                       # one-line summary
    analysis.to_dict()["summary"]["readiness_score"]
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from modelyard.core.errors import Conflict
from modelyard.migrate.code.findings import FileResult, Finding
from modelyard.migrate.code.rules import RuleSet, load_rules
from modelyard.migrate.code.scan_python import scan_python
from modelyard.migrate.code.scan_text import scan_text
from modelyard.migrate.code.sources import Limits, SourceFile, SourceTree, open_source, read_source

SCHEMA = "modelyard.analysis/1"
AUTO_REVIEW_HOURS = (0.02, 0.1)
REPEAT_FACTOR = 0.25
PENALTY = {
    ("auto", "low"): 0.05, ("auto", "medium"): 0.05, ("auto", "high"): 0.05,
    ("manual", "low"): 1.0, ("manual", "medium"): 3.0, ("manual", "high"): 8.0,
    ("unsupported", "low"): 2.0, ("unsupported", "medium"): 5.0, ("unsupported", "high"): 12.0,
}
SEVERITY = {"supported": 0, "auto": 1, "manual": 2, "unsupported": 3}
PARALLEL_MIN_FILES = 200

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Analysis:
    """The result of one analysis. ``bool(analysis)`` is True when nothing needs a person (no manual or
    unsupported findings); ``to_dict()`` is the ``modelyard.analysis/1`` document."""

    target: str
    root: str
    files: tuple[FileResult, ...]
    rules: RuleSet = field(repr=False, compare=False)

    def iter_findings(self) -> Iterator[Finding]:
        for result in self.files:
            yield from result.findings

    @property
    def findings(self) -> list[Finding]:
        return list(self.iter_findings())

    def count(self, status: str) -> int:
        return sum(1 for f in self.iter_findings() if f.status == status)

    def __bool__(self) -> bool:
        return not any(f.status in ("manual", "unsupported") for f in self.iter_findings())

    def fails(self, level: str) -> bool:
        """True when a finding is at ``level`` or worse (``manual`` includes ``unsupported``)."""
        threshold = SEVERITY[level]
        return any(SEVERITY.get(f.status, 0) >= threshold for f in self.iter_findings())

    def summary(self) -> dict:
        findings = self.findings
        python_lines = sum(r.lines for r in self.files if r.kind == "python")
        by_status = Counter(f.status for f in findings)
        per_rule: dict[tuple[str, str], int] = Counter((f.rule, f.status) for f in findings)
        low = high = penalty = 0.0
        for (rule_id, status), n in per_rule.items():
            if status == "supported":
                continue
            level = self.rules.get(rule_id).effort_for(self.target).level
            repeat = 1 + REPEAT_FACTOR * (n - 1)
            penalty += PENALTY[(status, level)] * repeat
            if status == "auto":
                low += AUTO_REVIEW_HOURS[0] * n
                high += AUTO_REVIEW_HOURS[1] * n
            else:
                hours = self.rules.get(rule_id).effort_for(self.target).hours
                low += hours[0] * repeat
                high += hours[1] * repeat
        k = 10 + python_lines / 250
        return {
            "files_scanned": len(self.files),
            "python_files": sum(1 for r in self.files if r.kind == "python"),
            "lines": sum(r.lines for r in self.files),
            "findings": len(findings),
            "by_category": dict(sorted(Counter(self.rules.get(f.rule).category for f in findings).items())),
            "by_status": {s: by_status[s] for s in ("supported", "auto", "manual", "unsupported") if by_status[s]},
            "auto": by_status["auto"],
            "manual": by_status["manual"],
            "unsupported": by_status["unsupported"],
            "readiness_score": round(100 * k / (k + penalty)),
            "effort_hours": {"low": round(low, 1), "high": round(high, 1)},
        }

    def finding_dict(self, finding: Finding) -> dict:
        rule = self.rules.get(finding.rule)
        message = rule.message.replace("{api}", finding.api)
        if finding.detail:
            message += f" ({finding.detail})"
        if finding.status == "supported":
            effort = {"level": "none", "hours": [0.0, 0.0]}
        elif finding.status == "auto":
            effort = {"level": "low", "hours": list(AUTO_REVIEW_HOURS)}
        else:
            chosen = rule.effort_for(self.target)
            effort = {"level": chosen.level, "hours": list(chosen.hours)}
        return {
            "file": finding.file,
            "line": finding.line,
            "column": finding.column,
            "end_line": finding.end_line,
            "rule": finding.rule,
            "api": finding.api,
            "category": rule.category,
            "status": finding.status,
            "effort": effort,
            "message": message,
            "suggestion": rule.suggestion_for(self.target),
            "snippet": finding.snippet,
        }

    def file_dicts(self) -> list[dict]:
        rows = []
        for result in self.files:
            counts = Counter(f.status for f in result.findings)
            rows.append({
                "path": result.path,
                "findings": len(result.findings),
                "auto": counts["auto"],
                "manual": counts["manual"],
                "unsupported": counts["unsupported"],
                "parse_error": result.parse_error,
            })
        return rows

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "target": self.target,
            "root": self.root,
            "summary": self.summary(),
            "files": self.file_dicts(),
            "findings": [self.finding_dict(f) for f in self.iter_findings()],
        }

    def __str__(self) -> str:
        s = self.summary()
        return (
            f"{s['files_scanned']} files, {s['findings']} findings for target {self.target}: {s['auto']} auto, "
            f"{s['manual']} manual, {s['unsupported']} unsupported; readiness {s['readiness_score']}/100, "
            f"effort {s['effort_hours']['low']}-{s['effort_hours']['high']} h"
        )


# ------------------------------------------------------------------------------------------------------------
# scanning

def _note_finding(rules: RuleSet, builtin: str, rel: str, detail: str) -> tuple[Finding, ...]:
    rule = rules.builtins.get(builtin)
    if rule is None:
        return ()
    return (Finding(rel, 1, 1, 1, 1, rule.id, rel.rsplit("/", 1)[-1], rule.status_for(rules.target) or "", "",
                    "line", detail),)


def scan_file(source: SourceFile, rules: RuleSet, limits: Limits) -> FileResult:
    """Read and scan one candidate file; skipped and re-decoded files carry a note finding."""
    text = read_source(source, limits)
    if text.skipped or text.text is None:
        reason = text.note or "skipped"
        return FileResult(source.rel, source.kind, 0, _note_finding(rules, "file-skipped", source.rel, reason), reason)
    if source.kind == "python":
        result = scan_python(rules, source.rel, text.text)
    else:
        result = scan_text(rules, source.rel, source.kind, text.text)
    if text.note:
        note = _note_finding(rules, "file-decoded", source.rel, text.note)
        result = FileResult(result.path, result.kind, result.lines, note + result.findings, result.parse_error)
    return result


_WORKER: tuple[RuleSet, Limits] | None = None


def _init_worker(target: str, extra: tuple[str, ...], limits: Limits) -> None:
    global _WORKER
    _WORKER = (load_rules(target, extra), limits)


def _scan_in_worker(source: SourceFile) -> FileResult:
    assert _WORKER is not None, "worker not initialised"
    return scan_file(source, *_WORKER)


def iter_results(
    tree: SourceTree,
    target: str = "any",
    *,
    extra_rules: tuple[str, ...] = (),
    jobs: int | None = None,
) -> Iterator[FileResult]:
    """Scan every file of ``tree``, yielding results as they come (in no particular order).

    Args:
        tree: an open ``SourceTree``.
        target: the migration target. Default ``any``.
        extra_rules: extra rule files or folders.
        jobs: worker processes; default all cores. Trees under ``PARALLEL_MIN_FILES`` files run in-process.
    """
    rules = load_rules(target, tuple(extra_rules))
    for rel, reason in tree.skipped:
        yield FileResult(rel, "skipped", 0, _note_finding(rules, "file-skipped", rel, reason), f"skipped: {reason}")
    jobs = jobs or os.cpu_count() or 1
    if jobs <= 1 or len(tree.files) < PARALLEL_MIN_FILES:
        for source in tree.files:
            yield scan_file(source, rules, tree.limits)
        return
    # NOTE: spawn, not fork: the caller may be a threaded server or job worker, where fork can deadlock.
    context = multiprocessing.get_context("spawn")
    # Largest files first in small chunks, so no worker is left alone with a big file at the end.
    ordered = sorted(tree.files, key=lambda s: -s.size)
    chunk = max(1, min(16, len(ordered) // (jobs * 32)))
    with context.Pool(jobs, initializer=_init_worker, initargs=(target, tuple(extra_rules), tree.limits)) as pool:
        yield from pool.imap_unordered(_scan_in_worker, ordered, chunksize=chunk)


def analyze_tree(
    tree: SourceTree,
    target: str = "any",
    *,
    extra_rules: tuple[str, ...] = (),
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Analysis:
    """Analyse an open ``SourceTree``; see ``analyze_path``."""
    rules = load_rules(target, tuple(extra_rules))
    total = len(tree.files) + len(tree.skipped)
    results: list[FileResult] = []
    step = max(1, total // 50)
    for result in iter_results(tree, target, extra_rules=extra_rules, jobs=jobs):
        results.append(result)
        if len(results) % step == 0:
            if progress:
                progress(len(results) / max(total, 1), f"scanned {len(results)}/{total} files")
            if cancelled and cancelled():
                raise Conflict("analysis cancelled")
    results.sort(key=lambda r: r.path)
    if progress:
        progress(1.0, f"scanned {total} files")
    return Analysis(target, tree.display_root, tuple(results), rules)


def analyze_path(
    path: str | os.PathLike,
    target: str = "any",
    *,
    extra_rules: tuple[str, ...] = (),
    limits: Limits | None = None,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Analysis:
    """Analyse a project folder, a single file or a .zip/.tar.gz archive for migration to ``target``.

    Args:
        path: what to analyse. A missing path raises ``NotFound``; an unsafe archive ``InvalidInput``.
        target: ``any``, ``npu``, ``cpu``, ``xpu``, ``mps`` or ``rocm``. Default ``any``.
        extra_rules: extra rule files or folders (their rules add to or replace the built-in ones by id).
        limits: size limits (``sources.Limits``); default 5 MiB per file, 1 GiB in all.
        jobs: worker processes for large trees; default all cores.
        progress: ``progress(fraction, message)`` callback.
        cancelled: returns True to stop early (raises ``Conflict``).

    Returns:
        An ``Analysis``; file paths in it are relative to ``path``.
    """
    load_rules(target, tuple(extra_rules))  # fail on a bad target or rule file before touching the input
    with open_source(path, limits) as tree:
        return analyze_tree(tree, target, extra_rules=extra_rules, jobs=jobs, progress=progress, cancelled=cancelled)
