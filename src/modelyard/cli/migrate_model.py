"""``modelyard migrate convert|coverage|compare``: model conversion, operator coverage and precision comparison.

These work on local files, so they call the library directly (no server round trip). Heavy imports stay inside
the commands. Option defaults are the action specs' (``migrate.model.specs``, ``migrate.optimize.spec``), written out
here because importing pydantic at CLI start costs ~0.5 s; ``tests/migrate/test_action_spec.py`` keeps them equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import SPEC_HELP, console, load_model_spec, print_json, run_action

app = typer.Typer()


def _cache(cache_dir: Path | None) -> Path:
    """``--cache-dir``, else ``<--home or $MODELYARD_HOME>/cache/passes``."""
    from modelyard.cli._common import OPTIONS
    from modelyard.core.settings import default_home

    if cache_dir is not None:
        return cache_dir
    return Path(OPTIONS.home or default_home()).expanduser() / "cache" / "passes"


def _progress(enabled: bool):
    """A ``callable(fraction, message)`` printing to stderr for people (silent under --json)."""
    if not enabled:
        return None
    from modelyard.cli._common import err_console

    last = {"message": None}

    def report(fraction: float, message: str) -> None:
        if message != last["message"]:
            last["message"] = message
            err_console.print(f"[dim]{fraction:4.0%} {message}[/]", highlight=False)

    return report


@app.command("convert")
def convert_command(
    spec: Annotated[str, typer.Argument(help=SPEC_HELP)],
    to: Annotated[str, typer.Option("--to", help="Target format: onnx, onnx-simplified, onnx-fp16, onnx-int8, "
                                    "onnx-int8-static, openvino, openvino-fp16, openvino-bf16, openvino-int8, "
                                    "torch-export.")] = "onnx",
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder, or a file ending in .onnx, .xml or .pt2: "
                                      "the final model alone, under that name.")] = Path("converted"),
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset for torch -> ONNX.")] = None,
    calib: Annotated[str | None, typer.Option("--calib", help="Calibration data for INT8 static "
                                              "(.npz, .npy folder, image folder).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Pass cache (default "
                                                   "$MODELYARD_HOME/cache/passes).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.convert/1 JSON.")] = False,
) -> None:
    """Convert a model to another format; every step is cached and verified to load and run."""

    def action():
        from modelyard.migrate.action_spec import validated
        from modelyard.migrate.model.passes import convert_model
        from modelyard.migrate.model.specs import ConvertSpec

        options = validated(ConvertSpec, {"to": to, "opset": opset, "calib": calib})
        return convert_model(load_model_spec(spec), options, out, cache_dir=_cache(cache_dir),
                             progress=_progress(not json_out))

    result = run_action(action)
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]{to}[/] -> {result.artifact.path}")
    for step in result.steps:
        state = "cached" if step.cached else f"{step.seconds:.1f}s"
        console.print(f"  {step.pass_name:<20} {state:>8}  verified on {step.verification['backend']}", highlight=False)
        for note in step.notes:
            console.print(f"  [dim]  {note}[/]", highlight=False)

@app.command("coverage")
def coverage_command(
    spec: Annotated[str, typer.Argument(help=SPEC_HELP)],
    target: Annotated[str, typer.Option(
        "--target", help="openvino:cpu, onnxruntime:<ep>, torch:<device> (ONNX on torch kernels) or npu.",
    )] = "openvino:cpu",
    model: Annotated[Path | None, typer.Option("--model", help="Use this .onnx instead of exporting the spec.")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Pass cache.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.coverage/1 JSON.")] = False,
) -> None:
    """Which operators of the exported graph run natively on a target, which fall back, which shapes are dynamic."""

    def action():
        from modelyard.migrate.model.coverage import op_coverage

        return op_coverage(load_model_spec(spec), target, model_path=model, cache_dir=_cache(cache_dir))

    result = run_action(action)
    if json_out:
        print_json(result.to_dict())
        return
    from rich.table import Table

    console.print(f"[bold]{result.target}[/]: {result.coverage:.1%} of {result.total_nodes} nodes native "
                  f"[dim]({result.method})[/]", highlight=False)
    table = Table("op", "count", "status", "runs on")
    for op in result.ops:
        style = "" if op["status"] == "native" else "yellow"
        table.add_row(op["op"], str(op["count"]), op["status"], op["runs_on"], style=style)
    console.print(table)
    dynamic = result.dynamic
    if dynamic.get("inputs"):
        console.print("dynamic inputs: " + ", ".join(f"{k}{v}" for k, v in dynamic["inputs"].items()), highlight=False)
    if dynamic.get("data_dependent_ops"):
        console.print(f"data-dependent shapes: {dynamic['data_dependent_ops']}", highlight=False)
    for note in result.notes:
        console.print(f"[dim]{note}[/]", highlight=False)

@app.command("compare")
def compare_command(
    spec: Annotated[str, typer.Argument(help=SPEC_HELP)],
    ref: Annotated[str, typer.Option("--ref", help="Reference backend:device.")] = "torch:cpu",
    target: Annotated[str, typer.Option("--target", help="Target backend:device.")] = "onnxruntime:cpu",
    target_model: Annotated[Path | None, typer.Option("--target-model", help="A converted model (.onnx/.xml) "
                                                      "to run on the target.")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Number of samples.")] = 8,
    data: Annotated[Path | None, typer.Option("--data", help="Real samples: .npz, .npy folder or image "
                                              "folder.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random feeds.")] = 0,
    layerwise: Annotated[bool, typer.Option("--layerwise", help="Compare layer by layer; find the first "
                                            "divergence, local vs accumulated.")] = False,
    layer_depth: Annotated[int | None, typer.Option("--layer-depth", help="Compare modules truncated to this "
                                                    "many path components (default: leaf modules).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="Threshold preset fp32|fp16|bf16|int8 "
                                               "(default: from the target's precision).")] = None,
    thresholds: Annotated[Path | None, typer.Option("--thresholds", help="YAML/JSON thresholds with per-output "
                                                    "overrides.")] = None,
    report: Annotated[Path | None, typer.Option("-o", "--report", help="Write the HTML report here "
                                                "(a .json path writes the JSON).")] = None,
    dump_dir: Annotated[Path | None, typer.Option("--dump-dir", help="Stream layer tensors here "
                                                  "(--layerwise).")] = None,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", help="Pass cache.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.compare/1 JSON.")] = False,
) -> None:
    """Compare a target against a reference: per-output metrics, verdict, noise floor, task agreement.

    Exits 1 when the verdict is fail."""

    def action():
        from modelyard.migrate.action_spec import validated
        from modelyard.migrate.model.compare import compare
        from modelyard.migrate.model.metrics import load_thresholds
        from modelyard.migrate.model.specs import CompareSpec

        model_spec = load_model_spec(spec)
        limits = load_thresholds(str(thresholds) if thresholds else None, preset) if (thresholds or preset) else None
        options = validated(CompareSpec, {
            "reference": ref, "target": target, "target_model": str(target_model) if target_model else None,
            "samples": samples, "data": str(data) if data else None, "seed": seed, "layerwise": layerwise,
            "layer_depth": layer_depth,
            "thresholds": limits.model_dump(mode="json") if limits is not None else None,
        })
        return compare(model_spec, options, dump_dir=dump_dir, cache_dir=_cache(cache_dir),
                       progress=_progress(not json_out))

    result = run_action(action)
    payload = result.to_dict()
    if report is not None:
        if report.suffix == ".json":
            import json

            report.parent.mkdir(parents=True, exist_ok=True)
            tmp = report.with_name(report.name + ".tmp")
            tmp.write_text(json.dumps(payload, indent=2, default=str))
            tmp.replace(report)
        else:
            from modelyard.migrate.model.compare_report import write_report

            write_report(payload, report)
    if json_out:
        print_json(payload)
    else:
        _print_compare(payload, report)
    if result.verdict == "fail":
        raise typer.Exit(1)


def _print_compare(payload: dict, report: Path | None) -> None:
    from rich.table import Table

    color = {"pass": "green", "warn": "yellow", "fail": "red"}[payload["verdict"]]
    console.print(f"[bold {color}]{payload['verdict'].upper()}[/] {payload['target']} vs {payload['reference']} "
                  f"on {payload['samples']} samples [dim](thresholds {payload['thresholds']['preset']})[/]",
                  highlight=False)
    table = Table("output", "max abs", "max rel", "cosine", "SQNR dB", "× floor", "allclose", "verdict")
    for o in payload["outputs"]:
        def f(v, spec=".3g"):
            return "—" if v is None else format(v, spec)

        table.add_row(o["name"], f(o["max_abs_err"]), f(o["max_rel_err"]), f(o["cosine"], ".6f"),
                      "exact" if o["sqnr_db"] is None else f(o["sqnr_db"], ".1f"), f(o.get("noise_floor_ratio"), ".2f"),
                      "yes" if o["allclose"] else "no", o["verdict"])
    console.print(table)
    task = payload.get("task")
    if task and task.get("verdict"):
        detail = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in task.items()
                           if k not in ("type", "output", "reasons", "verdict", "count"))
        console.print(f"task {task['type']}: {task['verdict']} ({detail})", highlight=False)
    fd = payload.get("first_divergence")
    if fd:
        console.print(f"first divergence: layer #{fd['index']} [bold]{fd['name']}[/] ({fd['target_name']}): "
                      f"{fd['kind']} error", highlight=False)
    elif payload.get("layers"):
        console.print(f"{len(payload['layers'])} layers compared, no divergence")
    for reason in payload["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    if report is not None:
        console.print(f"report: {report}", highlight=False)
