"""``modelyard migrate benchmark|optimize|run``: benchmarking, accuracy-gated optimisation and the end-to-end
migration pipeline. They work on local files, so they call the library directly; heavy imports stay inside.

Option defaults are the action specs' (``BenchmarkSpec``, ``OptimizeSpec``), written out here because importing
pydantic at CLI start costs ~0.5 s; ``tests/migrate/test_action_spec.py`` keeps them equal."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import SPEC_HELP, console, load_model_spec, print_json, run_action

app = typer.Typer()


def _cache_root(cache_dir: Path | None) -> Path:
    """``--cache-dir``, else ``<--home or $MODELYARD_HOME>/cache``."""
    from modelyard.cli._common import OPTIONS
    from modelyard.core.settings import default_home

    return cache_dir if cache_dir is not None else Path(OPTIONS.home or default_home()).expanduser() / "cache"


def _progress(enabled: bool):
    if not enabled:
        return None
    from modelyard.cli._common import err_console

    last = {"message": None}

    def report(fraction: float, message: str) -> None:
        if message != last["message"]:
            last["message"] = message
            err_console.print(f"[dim]{fraction:4.0%} {message}[/]", highlight=False)

    return report


def _int_list(text: str, option: str) -> list[int]:
    from modelyard.core.errors import InvalidInput

    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInput(f"{option} {text!r} must be comma-separated integers such as 1,8,32") from None
    if not values or any(v < 1 for v in values):
        raise InvalidInput(f"{option} {text!r} must list positive integers")
    return values


@app.command("benchmark")
def benchmark_command(
    spec: Annotated[str, typer.Argument(help=SPEC_HELP)],
    backend: Annotated[str, typer.Option("--backend", help="backend:device, e.g. torch:cpu, onnxruntime:cpu, "
                                         "openvino:cpu.")] = "onnxruntime:cpu",
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Comma-separated batch sizes.")] = "1",
    threads: Annotated[int | None, typer.Option("--threads", help="Intra-op threads (default: all cores).")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="A converted model (.onnx/.xml) to run.")] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="OpenVINO precision hint f32|bf16|f16.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Real samples (default: seeded random feeds).")] = None,
    profile: Annotated[bool, typer.Option("--profile", help="Per-operator profile with the hot spots ranked "
                                          "(ORT profiler / OpenVINO counters).")] = False,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Time cap per batch size.")] = 3.0,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.benchmark/1 JSON.")] = False,
) -> None:
    """Latency p50/p90/p99, throughput, peak memory and noise per batch size on one backend."""

    def action():
        from modelyard.migrate.action_spec import validated
        from modelyard.migrate.model.bench import run_benchmark
        from modelyard.migrate.model.specs import BenchmarkSpec

        options = {"threads": threads}
        if precision is not None:
            options["precision"] = precision
        bench_spec = validated(BenchmarkSpec, {
            "backend": backend, "batch_sizes": _int_list(batch_sizes, "--batch-sizes"), "options": options,
            "model": str(model) if model else None, "data": str(data) if data else None, "profile": profile,
            "max_seconds": max_seconds,
        })
        return run_benchmark(load_model_spec(spec), bench_spec, cache_dir=_cache_root(cache_dir) / "passes",
                             progress=_progress(not json_out))

    result = run_action(action)
    if json_out:
        print_json(result.to_dict())
        return
    from rich.table import Table

    console.print(f"[bold]{result.backend}[/] {result.model}" + (f" {result.options}" if result.options else ""),
                  highlight=False)
    table = Table("batch", "p50 ms", "p90 ms", "p99 ms", "samples/s", "cv", "runs", "peak RSS MB")
    for run in result.runs:
        table.add_row(str(run.batch_size), f"{run.p50_ms:.3f}", f"{run.p90_ms:.3f}", f"{run.p99_ms:.3f}",
                      f"{run.throughput:.1f}", f"{run.cv:.1%}", str(run.iterations),
                      "—" if run.peak_rss_mb is None else f"{run.peak_rss_mb:.0f}", style="yellow" if run.noisy else "")
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if result.profile:
        hot = Table("operator", "count", "ms/run", "share", title=f"hot spots ({result.profile['method']})")
        for op in result.profile["by_op_type"][:10]:
            hot.add_row(op["op_type"], str(op["count"]), f"{op['total_ms']:.3f}", f"{op['share']:.1%}")
        console.print(hot)

@app.command("optimize")
def optimize_command(
    spec: Annotated[str, typer.Argument(help=SPEC_HELP)],
    target: Annotated[str, typer.Option("--target", help="Device (cpu, cuda, npu, gpu) or one "
                                        "backend:device.")] = "cpu",
    objective: Annotated[str, typer.Option("--objective", help="latency or throughput.")] = "latency",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size optimised for.")] = 1,
    max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", help="Largest allowed loss of the "
                                                     "task metric (0.01 = 1 point of top-1 agreement).")] = 0.01,
    budget_s: Annotated[float, typer.Option("--budget-s", help="Stop starting candidates after this long.")] = 300.0,
    samples: Annotated[int, typer.Option("--samples", help="Inputs each candidate is gated on.")] = 128,
    data: Annotated[Path | None, typer.Option("--data", help="Real samples (default: seeded random feeds).")] = None,
    calib: Annotated[str | None, typer.Option("--calib", help="INT8 calibration data.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="search or exhaustive.")] = "search",
    min_speedup: Annotated[float | None, typer.Option("--min-speedup", help="A goal: say so when the best "
                                                      "misses it.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Re-measure everything.")] = False,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (best/ and "
                                      "optimize.json).")] = Path("optimized"),
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.optimize/1 JSON.")] = False,
) -> None:
    """Search backends x passes x runtime options for the fastest candidate that keeps the accuracy.

    Exits 1 when no candidate is accepted."""

    def action():
        from modelyard.migrate.action_spec import validated
        from modelyard.migrate.optimize.search import search
        from modelyard.migrate.optimize.spec import OptimizeSpec

        options = validated(OptimizeSpec, {
            "target": target, "objective": objective, "batch_size": batch_size,
            "max_accuracy_drop": max_accuracy_drop, "budget_s": budget_s, "samples": samples,
            "data": str(data) if data else None, "calib": calib, "strategy": strategy, "min_speedup": min_speedup,
        })
        return search(load_model_spec(spec), options, out_dir=out, cache_dir=_cache_root(cache_dir),
                      use_cache=not no_cache, progress=_progress(not json_out))

    result = run_action(action)
    if json_out:
        print_json(result.to_dict())
    else:
        _print_optimize(result)
    if not result:
        raise typer.Exit(1)

@app.command("run")
def run_command(
    migration: Annotated[Path, typer.Argument(help="MIGRATION.yaml describing the project.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output folder (default ./migration-NAME); "
                                             "rerunning into it resumes.")] = None,
    force: Annotated[list[str] | None, typer.Option("--force", help="Rerun this phase (and its dependants) "
                                                    "even if unchanged; repeatable.")] = None,
    stop_after: Annotated[str | None, typer.Option("--stop-after", help="Run up to this phase only.")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.migration-run/1 JSON.")] = False,
) -> None:
    """Run the whole migration: analyze, apply, convert, coverage, compare, optimize, package, report.

    Finished phases are resumed. Exits 1 when a phase fails or an acceptance goal is missed."""

    def action():
        from modelyard.migrate.pipeline.run import run_migration

        return run_migration(migration, out, cache_dir=_cache_root(cache_dir), force=tuple(force or ()),
                             stop_after=stop_after, progress=_progress(not json_out))

    result = run_action(action)
    if json_out:
        print_json(result.to_dict())
    else:
        _print_run(result)
    if not result and stop_after is None:
        raise typer.Exit(1)


def _print_optimize(result) -> None:
    from rich.table import Table

    base = result.baseline
    console.print(f"baseline [bold]{base['backend']}[/]: p50 {base['latency_ms_p50']:.3f} ms, "
                  f"{base['throughput']:.1f} samples/s", highlight=False)
    table = Table("candidate", "options", "p50 ms", "speedup", "accuracy", "ok", "pareto")
    for c in result.candidates:
        acc = c.accuracy.get("value")
        table.add_row(c.label, ", ".join(f"{k}={v}" for k, v in c.options.items()),
                      "—" if c.latency_ms_p50 is None else f"{c.latency_ms_p50:.3f}",
                      "—" if c.speedup is None else f"{c.speedup:.2f}x", "—" if acc is None else f"{acc:.4f}",
                      "yes" if c.accepted else "no", "*" if c.pareto else "", style="" if c.accepted else "dim")
    console.print(table)
    if result.best is not None:
        best = result.best
        console.print(f"[bold green]best[/] {best.label} {best.options}: p50 {best.latency_ms_p50:.3f} ms, "
                      f"[bold]{best.speedup:.2f}x[/] vs {base['backend']}, {best.accuracy['metric']} "
                      f"{best.accuracy['value']:.4f}", highlight=False)
        console.print(f"artifact: {result.best_artifact}", highlight=False)
    else:
        console.print("[bold red]no candidate kept the accuracy[/]")
    console.print(f"{len(result.candidates)} candidates in {result.seconds:.0f}s, stopped: {result.stopped}",
                  highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    for skip in result.skipped:
        console.print(f"[dim]skipped {skip.get('backend')} {skip.get('precision', '')}: {skip['reason']}[/]",
                      highlight=False)


def _print_run(result) -> None:
    from rich.table import Table

    table = Table("phase", "status", "seconds", "summary")
    for phase in result.phases:
        status = "reused" if phase.reused else phase.status
        seconds = phase.seconds
        table.add_row(phase.name, status, "" if seconds is None else f"{seconds:.1f}", phase.summary)
    console.print(table)
    color = "green" if result.accepted else "red"
    verdict = "ACCEPTED" if result.accepted else "NOT ACCEPTED"
    h = result.headline
    if h is None:  # --stop-after before the report
        console.print(f"[bold {color}]{verdict}[/] (stopped before the report)", highlight=False)
        return
    console.print(f"[bold {color}]{verdict}[/] readiness {h.readiness_score}/100, compare verdict {h.verdict}, "
                  f"speedup {h.speedup}x at {h.accuracy}", highlight=False)
    console.print(f"report: {result.reports['html']}", highlight=False)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
