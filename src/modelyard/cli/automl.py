"""``modelyard automl train``: ExeML-style AutoML as a job, waited for with progress.

Against a server (``--url``) the job runs on the server's worker. In-process (no ``--url``) this command also
drives a local worker until the job ends, so it works on a laptop with no server running.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, err_console, get_client, print_json

app = typer.Typer(no_args_is_help=True)


def run_job(client, kind: str, spec: dict, quiet: bool, wait: bool = True) -> dict:
    """Submit a job and (with ``wait``) wait for it, printing its progress to stderr unless ``quiet``. Returns the
    final job. In-process, a worker runs in this process until the job is done."""
    if not wait:
        return client.jobs.submit(kind, spec)
    last = {"message": None}

    def show(state: dict) -> None:
        message = state["progress"]["message"]
        if not quiet and message and message != last["message"]:
            last["message"] = message
            err_console.print(f"[dim]{state['progress']['fraction']:4.0%} {message}[/]", highlight=False)

    return client.jobs.run(kind, spec, poll_s=0.5, on_update=show)


def finish(job: dict) -> dict:
    """The job's result, or one clear error line (exit 1) when it did not succeed."""
    from modelyard.core.errors import ModelyardError

    if job["status"] != "succeeded":
        raise ModelyardError(f"{job['kind']} job {job['id']} {job['status']}: {job['error'] or 'no error recorded'}",
                             code=f"job_{job['status']}")
    return job["result"]


@app.command("train")
def train_command(
    dataset: Annotated[str, typer.Argument(help="Dataset version, NAME@VERSION.")],
    name: Annotated[str, typer.Option("--name", help="Registry model the winner is registered as.")],
    task: Annotated[str, typer.Option("--task", help="auto, classification, regression, image-classification or "
                                      "detection.")] = "auto",
    time_budget: Annotated[float, typer.Option("--time-budget", help="Seconds for the whole search.")] = 60.0,
    max_trials: Annotated[int | None, typer.Option("--max-trials", help="Stop after this many candidates (or at "
                                                   "the time budget, whichever comes first); with --seed the "
                                                   "result does not depend on machine load.")] = None,
    max_latency_ms: Annotated[float | None, typer.Option("--max-latency-ms", help="Reject candidates slower than "
                                                         "this (p95, one request, onnxruntime CPU).")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="accuracy, balanced_accuracy, f1_macro, roc_auc, "
                                               "log_loss | r2, rmse, mae | map50_95, map50.")] = None,
    input_size: Annotated[int | None, typer.Option("--input-size", help="Detection: the detector's square input "
                                                   "side in pixels (multiple of 16); default: searched.")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", help="Detection: sha256:DIGEST of a safetensors "
                                                 "backbone in the blob store ('blobs put') to fine-tune from.")]
    = None,
    families: Annotated[str | None, typer.Option("--families", help="Tabular families, comma-separated: lightgbm, "
                                                 "linear, random_forest, extra_trees.")] = None,
    no_ensemble: Annotated[bool, typer.Option("--no-ensemble", help="Do not try ensembles.")] = False,
    no_refit: Annotated[bool, typer.Option("--no-refit", help="Tables: keep the winner fitted on the train split "
                                           "only, so the validation split stays held out for evaluate.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the search.")] = 0,
    description: Annotated[str, typer.Option("--description", help="Text for the model card.")] = "",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit and print the job id.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.automl/1 result.")] = False,
) -> None:
    """Train: search models under the budget (and trial count), measure each on onnxruntime, register the
    winner."""
    spec = {"dataset": dataset, "name": name, "task": task, "time_budget_s": time_budget, "max_trials": max_trials,
            "max_latency_ms": max_latency_ms, "metric": metric, "ensemble": not no_ensemble, "refit": not no_refit,
            "input_size": input_size, "backbone": backbone,
            "seed": seed,
            "description": description}
    if families:
        spec["families"] = [f.strip() for f in families.split(",") if f.strip()]
    with get_client() as client:
        job = run_job(client, "automl.train", spec, quiet=as_json, wait=not no_wait)
    if no_wait:
        if as_json:
            print_json(job)
        else:
            console.print(f"{job['id']} queued; follow it with 'modelyard jobs wait {job['id']}'", highlight=False)
        return
    result = finish(job)
    if as_json:
        print_json(result)
        return
    _print_result(result)


def _print_result(result: dict) -> None:
    from rich.table import Table

    arrow = "higher is better" if result["higher_is_better"] else "lower is better"
    console.print(f"[bold]{result['model'] or '(not registered)'}[/]: {result['winner']['family']} "
                  f"{result['metric']}={result['score']:.4f} ({arrow}), latency p95 {result['latency_ms']:.3f} ms, "
                  f"{result['trials']} trials in {result['seconds']}s ({result['stop_reason']})", highlight=False)
    table = Table("#", "family", "score", "latency ms", "accepted", box=None)
    for rank, entry in enumerate(result["leaderboard"][:10], start=1):
        latency = "-" if entry["latency_ms"] is None else f"{entry['latency_ms']:.3f}"
        accepted = {True: "yes", False: "[red]no[/]", None: "-"}[entry["accepted"]]
        score = "-" if entry["score"] is None else f"{entry['score']:.4f}"
        table.add_row(str(rank), entry["family"], score, latency, accepted)
    console.print(table)
    console.print(f"run {result['run']}; {evaluate_hint(result)}", highlight=False)


def evaluate_hint(result: dict) -> str:
    """How to measure the winner on rows it was not fitted on (the whole version is never that)."""
    model, dataset = result["model"] or "MODEL@V", result["dataset"]
    if "validation" in result.get("fit_splits", ["train", "validation"]):
        return (f"the winner was refitted on every row of {dataset} (train + validation), so none is held out: "
                f"evaluate it on a separately imported test set ('modelyard evaluate {model} --data TEST@1'), or "
                "train with --no-refit to keep the validation split held out")
    return f"evaluate it on held-out rows with 'modelyard evaluate {model} --data {dataset} --split validation'"
