"""``modelyard runs list | show | compare | delete``: tracked training runs."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]
STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "killed": "magenta"}


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("list")
def list_command(
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    status: Annotated[str | None, typer.Option(help="running, finished, failed or killed.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only runs on this dataset version (NAME@VERSION).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.runs.list(experiment=experiment, status=status, dataset=dataset, limit=limit)
    if as_json:
        print_json(data)
        return
    table = Table("id", "name", "experiment", "status", "dataset", "metrics", "started", box=None)
    for run in data["items"]:
        metrics = ", ".join(f"{k}={_value(v)}" for k, v in sorted(run["metrics"].items())[:4])
        style = STATUS_STYLE.get(run["status"], "white")
        table.add_row(run["id"], run["name"], run["experiment"], f"[{style}]{run['status']}[/]", run["dataset"] or "-",
                      metrics, run["started_at"][:19])
    console.print(table)


@app.command("show")
def show_command(run_id: str, as_json: JsonOpt = False,
                 logs: Annotated[bool, typer.Option("--logs", help="Print the run's log lines too.")] = False) -> None:
    """Show a run: params, latest metrics (with the number of steps), artifacts, lineage."""
    with get_client(read_only=True) as client:
        run = client.runs.get(run_id)
        lines = client.runs.logs(run_id)["lines"] if logs else []
    if as_json:
        if logs:
            run["logs"] = lines
        print_json(run)
        return
    style = STATUS_STYLE.get(run["status"], "white")
    console.print(f"[bold]{run['id']}[/] {run['name']} ({run['experiment']}) [{style}]{run['status']}[/]"
                  + (f" in {run['duration_s']}s" if run["duration_s"] is not None else ""), highlight=False)
    console.print(f"dataset {run['dataset'] or '-'}, job {run['job_id'] or '-'}, model {run['model'] or '-'}",
                  highlight=False)
    if run["error"]:
        console.print(f"[red]error:[/] {run['error']}", highlight=False)
    for key, value in sorted(run["params"].items()):
        console.print(f"  param  {key} = {value}", highlight=False)
    history = run.get("history", {})
    for key, value in sorted(run["metrics"].items()):
        console.print(f"  metric {key} = {_value(value)} ({len(history.get(key, []))} steps)", highlight=False)
    for artifact in run["artifacts"]:
        console.print(f"  artifact {artifact['name']} {artifact['digest']} ({artifact['size']} bytes)",
                      highlight=False)
    for line in lines:
        console.print(f"[dim]{line['at'][:19]}[/] {line['line']}", highlight=False)


@app.command("compare")
def compare_command(run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
                    as_json: JsonOpt = False) -> None:
    """Params and metrics of runs side by side; differing rows are highlighted and the best metric is starred."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.runs.compare(run_ids)
    if as_json:
        print_json(data)
        return
    table = Table("", *[f"{r['name']}\n{r['id']}" for r in data["runs"]], box=None)
    for key in data["params"]:
        style = "yellow" if key in data["differs"]["params"] else ""
        table.add_row(f"param {key}", *[_value(r["params"].get(key, "-")) for r in data["runs"]], style=style)
    for key in data["metrics"]:
        style = "yellow" if key in data["differs"]["metrics"] else ""
        cells = []
        for run in data["runs"]:
            value = run["metrics"].get(key)
            mark = " *" if data["best"].get(key) == run["id"] else ""
            cells.append("-" if value is None else _value(value) + mark)
        table.add_row(f"metric {key}", *cells, style=style)
    console.print(table)


@app.command("delete")
def delete_command(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete an ended run with its metrics and logs ('blobs gc' later frees artifacts nothing else uses)."""
    if not yes and not as_json and not typer.confirm(f"delete run {run_id}?", default=False):
        raise typer.Exit(1)
    with get_client() as client:
        result = client.runs.delete(run_id)
    if as_json:
        print_json(result)
    else:
        console.print(f"deleted run {result['id']} ({result['name']})", highlight=False)
