"""``modelyard migrate analyze`` and ``modelyard migrate apply``: code readiness analysis and migration.

Both work on local files, so they call the library directly (no server round trip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, err_console, print_json

app = typer.Typer()

TARGET_HELP = "Target: any (device-agnostic torch.accelerator, CPU fallback), npu, cpu, xpu, mps, rocm."


def _limits(max_file_mb: float):
    from modelyard.core.errors import InvalidInput
    from modelyard.migrate.code.sources import Limits

    if max_file_mb <= 0:
        raise InvalidInput("--max-file-mb must be positive")
    return Limits(max_file_bytes=int(max_file_mb * 1024 * 1024))


def _summary_table(analysis) -> None:
    from rich.table import Table

    s = analysis.summary()
    table = Table(title=f"Migration readiness for target '{analysis.target}': {analysis.root}", title_justify="left")
    for column in ("readiness", "effort (h)", "files", "lines", "findings", "auto", "manual", "unsupported"):
        table.add_column(column, justify="right")
    table.add_row(f"{s['readiness_score']}/100", f"{s['effort_hours']['low']}-{s['effort_hours']['high']}",
                  str(s["files_scanned"]), str(s["lines"]), str(s["findings"]), str(s["auto"]), str(s["manual"]),
                  str(s["unsupported"]))
    console.print(table)
    if s["by_category"]:
        categories = Table(title="By category", title_justify="left")
        categories.add_column("category")
        categories.add_column("findings", justify="right")
        for name, count in s["by_category"].items():
            categories.add_row(name, str(count))
        console.print(categories)
    files = [f for f in analysis.file_dicts() if f["findings"]]
    if files:
        per_file = Table(title="Files with findings", title_justify="left")
        for column in ("file", "auto", "manual", "unsupported"):
            per_file.add_column(column, justify="left" if column == "file" else "right")
        for f in sorted(files, key=lambda f: (-f["unsupported"], -f["manual"], f["path"]))[:30]:
            per_file.add_row(f["path"], str(f["auto"]), str(f["manual"]), str(f["unsupported"]))
        console.print(per_file)
        if len(files) > 30:
            console.print(f"... and {len(files) - 30} more files; use --format or -o for the full report.")


@app.command("analyze")
def analyze(
    path: Annotated[str, typer.Argument(help="Project folder, single file, or .zip/.tar.gz archive.")],
    target: Annotated[str, typer.Option("--target", "-t", help=TARGET_HELP)] = "any",
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="json, md, html or csv.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the report here.")] = None,
    fail_on: Annotated[
        str | None, typer.Option("--fail-on", help="Exit 1 if any finding is manual (or worse) / unsupported.")
    ] = None,
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Extra rule file or folder (repeatable).")] = None,
    max_file_mb: Annotated[float, typer.Option("--max-file-mb", help="Skip files larger than this.")] = 5.0,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Worker processes (default: all cores).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report on stdout.")] = False,
) -> None:
    """Scan GPU (CUDA) PyTorch code for what must change to run on TARGET, with a score and effort."""
    from modelyard.core.errors import InvalidInput
    from modelyard.migrate.code.analyze import analyze_path
    from modelyard.migrate.code.report import FORMATS, format_for, render
    from modelyard.migrate.code.rules import check_target

    check_target(target)
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fail_on is not None and fail_on not in ("manual", "unsupported"):
        raise InvalidInput(f"--fail-on: expected 'manual' or 'unsupported', got {fail_on!r}")
    if as_json and fmt not in (None, "json"):
        raise InvalidInput("--json and --format: choose one")
    analysis = analyze_path(path, target, extra_rules=tuple(rules or ()), limits=_limits(max_file_mb), jobs=jobs)
    if output is not None:
        chosen = format_for(str(output), fmt)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(render(analysis, chosen), encoding="utf-8")
        err_console.print(f"{analysis}\nwrote {chosen} report to {output}", highlight=False)
    elif as_json or fmt == "json":
        print_json(analysis.to_dict())
    elif fmt is not None:
        typer.echo(render(analysis, fmt), nl=False)
    else:
        _summary_table(analysis)
    if fail_on is not None and analysis.fails(fail_on):
        err_console.print(f"fail-on {fail_on}: findings at or above '{fail_on}' remain", highlight=False)
        raise typer.Exit(1)

@app.command("apply")
def apply(
    path: Annotated[str, typer.Argument(help="Project folder, single file, or .zip/.tar.gz archive.")],
    target: Annotated[str, typer.Option("--target", "-t", help=TARGET_HELP)],
    out: Annotated[Path | None, typer.Option("--out", help="Write the migrated copy here (new or empty).")] = None,
    in_place: Annotated[bool, typer.Option("--in-place", help="Rewrite PATH itself (atomic, with backups).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the unified diff only; write nothing.")] = False,
    rules: Annotated[list[str] | None, typer.Option("--rules", help="Extra rule file or folder (repeatable).")] = None,
    max_file_mb: Annotated[float, typer.Option("--max-file-mb", help="Skip files larger than this.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rewrite what can be migrated automatically (libcst) and mark the rest with # MIGRATE comments."""
    from modelyard.migrate.code.apply import apply_migration
    from modelyard.migrate.code.rules import check_target

    check_target(target)
    result = apply_migration(path, target, out=out, in_place=in_place, dry_run=dry_run,
                             extra_rules=tuple(rules or ()), limits=_limits(max_file_mb))
    if dry_run:
        if as_json:
            print_json({**result.to_dict(), "diff": result.diff})
        else:
            typer.echo(result.diff, nl=False)
        return
    if as_json:
        print_json(result.to_dict())
        return
    console.print(str(result), highlight=False)
    for name, report in result.reports.items():
        console.print(f"  {name}: {report}", highlight=False)
