"""``modelyard train submit script.py --data DS@V --workers N --param k=v``: the user's own training code as a job.

The script is uploaded to the blob store, then run by the ``train`` job kind on N data-parallel workers
(``torchrun`` semantics; the executor setting decides where the job runs). In-process (no ``--url``) this command
drives a local worker until the job ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json
from modelyard.cli.automl import finish, run_job

app = typer.Typer(no_args_is_help=True)


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    from modelyard.core.errors import InvalidInput

    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {pair!r}: expected KEY=VALUE")
        params[key.strip()] = value
    return params


@app.command("submit")
def submit_command(
    script: Annotated[Path, typer.Argument(help="The training script (uses modelyard.train.script_context).")],
    data: Annotated[str | None, typer.Option("--data", help="Dataset version NAME@VERSION, mounted as files.")]
    = None,
    workers: Annotated[int, typer.Option("--workers", help="Data-parallel worker processes (ranks).")] = 1,
    param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE for the script; repeatable.")] = None,
    max_restarts: Annotated[int, typer.Option("--max-restarts", help="Restarts from the last checkpoint after a "
                                              "worker dies.")] = 2,
    name: Annotated[str | None, typer.Option("--name", help="Run name (default train-<script>).")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Submit and print the job id.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the modelyard.train/1 result.")] = False,
) -> None:
    """Run a training script on N workers as a job: metrics tracked as a run, checkpoints in the blob store."""
    from modelyard.core.errors import InvalidInput

    if not script.is_file():
        raise InvalidInput(f"no such script: {script}")
    if script.suffix != ".py":
        raise InvalidInput(f"{script}: the training script must be a .py file")
    params = parse_params(param)
    with get_client() as client:
        blob = client.blobs.put(script)
        spec = {"script": blob["digest"], "script_name": script.name, "data": data, "workers": workers,
                "params": params, "max_restarts": max_restarts, "name": name}
        job = run_job(client, "train", spec, quiet=as_json, wait=not no_wait)
    if no_wait:
        if as_json:
            print_json(job)
        else:
            console.print(job["id"])
        return
    result = finish(job)
    if as_json:
        print_json(result)
        return
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result["metrics"].items()))
    restarts = f", {result['restarts']} restart(s)" if result["restarts"] is not None else ""
    console.print(f"run {result['run_id']}: {result['workers']} worker(s), last step {result['steps']}{restarts}; "
                  f"{metrics or 'no metrics'}", highlight=False)
