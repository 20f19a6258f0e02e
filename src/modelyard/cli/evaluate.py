"""``modelyard models evaluate MODEL@V --data DATASET@V`` (shortcut ``modelyard evaluate``): metrics and a
self-contained HTML report, as a job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, err_console, get_client, print_json

app = typer.Typer()


@app.command("evaluate")
def evaluate_command(
    model: Annotated[str, typer.Argument(help="Registry model version, NAME@VERSION or NAME@ALIAS.")],
    data: Annotated[str, typer.Option("--data", "--dataset", help="Dataset version to evaluate on, NAME@VERSION.")],
    split: Annotated[str, typer.Option("--split", help="all (default), train or validation rows.")] = "all",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Write the HTML report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.evaluation/1 result.")] = False,
) -> None:
    """Evaluate a model on a dataset version: metrics, confusion matrix, ROC/PR, calibration, importance.

    Importance is per feature for tables, saliency for images; a detector on an object-detection dataset gets COCO
    mAP, per-class AP, PR curves and a score threshold; -o writes a self-contained HTML report."""
    from modelyard.cli.automl import finish, run_job

    with get_client() as client:
        result = finish(run_job(client, "evaluate", {"model": model, "dataset": data, "split": split},
                                quiet=as_json))
        if out is not None:
            client.blobs.get(result["report"]["digest"], out)
    from rich.markup import escape

    for warning in result.get("warnings") or []:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json(result)
        return
    metrics = result["metrics"]
    console.print(f"[bold]{result['model']}[/] on {result['dataset']} ({result['split']}, {result['rows']} rows, "
                  f"{result['task']})", highlight=False)
    for key, value in metrics.items():
        if isinstance(value, float):
            console.print(f"  {key:<18} {value:.4f}", highlight=False)
        elif value is None:
            console.print(f"  {key:<18} n/a", highlight=False)
    if result.get("task") == "detection":
        aps = ", ".join(f"{name} {row['ap50']:.3f}" for name, row in list(result["per_class"].items())[:10]
                        if row.get("ap50") is not None)
        console.print(f"  AP50 per class: {aps or 'n/a'}", highlight=False)
        if result.get("suggested_threshold"):
            best = result["suggested_threshold"]
            console.print(f"  suggested score threshold {best['threshold']:.3f} (F1 {best['f1']:.3f}); serve with "
                          f"?threshold={best['threshold']:.2f}", highlight=False)
    if result.get("feature_importance"):
        top = ", ".join(f"{f['feature']} ({f['importance']:.3g})" for f in result["feature_importance"][:5])
        console.print(f"  most important: {top}", highlight=False)
    if out is not None:
        console.print(f"report: {out}", highlight=False)
