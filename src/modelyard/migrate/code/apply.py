"""``migrate apply``: analyse, rewrite, write the migrated project and its reports.

The input is never modified unless ``in_place`` is set; then each file is replaced atomically (temp file +
rename) after its original is copied to ``.modelyard-migrate/backup-<time>/``. Reports go to
``<destination>/.modelyard-migrate/``: ``change_list.csv`` (file, line, rule, before, after), ``migration.diff``
(unified diff) and ``analysis.json`` / ``analysis.md`` (the post-migration analysis). Applying to an already
migrated project changes nothing.

Example::

    result = apply_migration("examples/gpu_project", "any", out="migrated")
    print(result)
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelyard.core.errors import Conflict, InvalidInput
from modelyard.migrate.code.analyze import Analysis, analyze_path, analyze_tree
from modelyard.migrate.code.report import render, write_change_list
from modelyard.migrate.code.rewrite import ChangeRow, rewrite_python, rewrite_text
from modelyard.migrate.code.rules import load_rules
from modelyard.migrate.code.sources import SKIP_DIRS, Limits, open_source, read_source

SCHEMA = "modelyard.migration/1"
REPORT_DIR = ".modelyard-migrate"


@dataclass(frozen=True)
class FileChange:
    path: str
    before: str
    after: str
    encoding: str

    def diff(self) -> str:
        return "".join(difflib.unified_diff(self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
                                            fromfile=f"a/{self.path}", tofile=f"b/{self.path}"))


@dataclass(frozen=True)
class MigrationResult:
    """What ``apply`` did. ``bool(result)`` is True when the migrated project needs no person (no manual or
    unsupported findings left)."""

    target: str
    source: str
    destination: str | None
    dry_run: bool
    changes: tuple[FileChange, ...]
    rows: tuple[ChangeRow, ...]
    before: Analysis
    after: Analysis | None
    reports: dict[str, str] = field(default_factory=dict)

    @property
    def diff(self) -> str:
        return "".join(change.diff() for change in self.changes)

    def __bool__(self) -> bool:
        return bool(self.after if self.after is not None else self.before)

    def to_dict(self) -> dict:
        rewritten = sum(1 for r in self.rows if r.before)
        return {
            "schema": SCHEMA,
            "target": self.target,
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "files_changed": [c.path for c in self.changes],
            "sites_rewritten": rewritten,
            "comments_added": sum(1 for r in self.rows if not r.before and r.rule != "migrate-header"),
            "before": self.before.summary(),
            "after": self.after.summary() if self.after is not None else None,
            "reports": self.reports,
        }

    def __str__(self) -> str:
        data = self.to_dict()
        where = "dry run" if self.dry_run else f"written to {self.destination}"
        text = (f"{len(self.changes)} files changed ({data['sites_rewritten']} sites rewritten, "
                f"{data['comments_added']} MIGRATE comments) for target {self.target}; {where}")
        if self.after is not None:
            text += f"; after: {self.after}"
        return text


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_destination(path: Path, out: str | None, in_place: bool, dry_run: bool, archive: bool) -> Path | None:
    if out is not None and in_place:
        raise InvalidInput("--out and --in-place: choose one")
    if out is None and not in_place and not dry_run:
        raise InvalidInput("--out DIR or --in-place is required (or --dry-run to see the diff)")
    if in_place and archive:
        raise InvalidInput("--in-place cannot rewrite an archive; use --out DIR")
    if out is None:
        return None
    destination = Path(out).expanduser().resolve()
    source_root = path.resolve() if path.is_dir() else path.resolve().parent
    if path.is_dir() and _inside(destination, source_root):
        raise InvalidInput(f"--out {out} is inside PATH; choose a folder outside the project")
    if path.is_dir() and _inside(source_root, destination):
        raise InvalidInput(f"--out {out} contains PATH; choose a new folder")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise Conflict(f"--out {out} already exists and is not an empty folder")
    return destination


def apply_migration(
    path: str | os.PathLike,
    target: str,
    *,
    out: str | os.PathLike | None = None,
    in_place: bool = False,
    dry_run: bool = False,
    extra_rules: tuple[str, ...] = (),
    limits: Limits | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> MigrationResult:
    """Migrate a project (folder, file or archive) to ``target``.

    Args:
        path: the project.
        target: ``any``, ``npu``, ``cpu``, ``xpu``, ``mps`` or ``rocm``.
        out: write a migrated copy here (must be new or empty, outside ``path``).
        in_place: rewrite ``path`` itself, atomically per file, keeping backups.
        dry_run: compute the changes and the diff only; write nothing.
        extra_rules: extra rule files or folders.
        limits: input size limits.
        progress: ``progress(fraction, message)`` callback.

    Returns:
        A ``MigrationResult`` with the changes, change rows, diff, analyses before/after and report paths.
    """
    rules = load_rules(target, tuple(extra_rules))
    given = Path(path).expanduser()
    with open_source(given, limits) as tree:
        destination = _check_destination(given, None if out is None else str(out), in_place, dry_run, tree.is_archive)
        before = analyze_tree(tree, target, extra_rules=extra_rules,
                              progress=(lambda f, m: progress(0.4 * f, m)) if progress else None)
        by_file: dict[str, list] = {}
        for finding in before.iter_findings():
            by_file.setdefault(finding.file, []).append(finding)
        sources = {s.rel: s for s in tree.files}
        changes: list[FileChange] = []
        rows: list[ChangeRow] = []
        for rel, findings in sorted(by_file.items()):
            source = sources.get(rel)
            if source is None:
                continue
            text = read_source(source, tree.limits)
            if text.skipped or text.text is None or text.note:
                continue  # never rewrite what we could not read faithfully
            if source.kind == "python":
                new_text, file_rows = rewrite_python(text.text, findings, rules, rel)
            else:
                new_text, file_rows = rewrite_text(text.text, source.kind, findings, rules, rel)
            if new_text != text.text:
                changes.append(FileChange(rel, text.text, new_text, text.encoding))
                rows.extend(file_rows)
        if progress:
            progress(0.6, f"{len(changes)} files to change")
        if dry_run:
            return MigrationResult(target, tree.display_root, None, True, tuple(changes), tuple(rows), before, None)
        if destination is not None:
            root = destination
            if tree.single_file:
                root.mkdir(parents=True, exist_ok=True)
                shutil.copy2(tree.files[0].path, root / tree.files[0].rel)
            else:
                shutil.copytree(tree.root, root, symlinks=True, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(*SKIP_DIRS))
        else:
            root = tree.root
        report_dir = root / REPORT_DIR
        if in_place and changes:
            backup = report_dir / time.strftime("backup-%Y%m%d-%H%M%S")
            for change in changes:
                (backup / change.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(root / change.path, backup / change.path)
        for change in changes:
            _atomic_write(root / change.path, change.after.encode(change.encoding))
    display = str(root)
    after_path = root / tree.files[0].rel if tree.single_file else root
    after = analyze_path(after_path, target, extra_rules=extra_rules, limits=limits)
    if progress:
        progress(0.9, "post-migration analysis done")
    report_dir.mkdir(parents=True, exist_ok=True)
    reports = {
        "change_list": str(report_dir / "change_list.csv"),
        "diff": str(report_dir / "migration.diff"),
        "analysis_json": str(report_dir / "analysis.json"),
        "analysis_md": str(report_dir / "analysis.md"),
    }
    result = MigrationResult(target, tree.display_root, display, False, tuple(changes), tuple(rows), before, after,
                             reports)
    _atomic_write(Path(reports["change_list"]), write_change_list(result.rows).encode("utf-8"))
    _atomic_write(Path(reports["diff"]), result.diff.encode("utf-8"))
    _atomic_write(Path(reports["analysis_json"]), render(after, "json").encode("utf-8"))
    _atomic_write(Path(reports["analysis_md"]), render(after, "md").encode("utf-8"))
    if progress:
        progress(1.0, str(result))
    return result
