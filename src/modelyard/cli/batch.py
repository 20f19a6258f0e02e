"""``modelyard models batch N@V --input DIR|CSV|PARQUET|NPZ --output OUT`` (shortcut ``modelyard batch``): batch
inference as a resumable job."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import OPTIONS, console, get_client, print_json

app = typer.Typer()


def _run_local_worker(stop: threading.Event) -> threading.Thread:
    """In-process mode has no server and so no worker: run one here until the queue is empty."""
    from modelyard.core.settings import Settings
    from modelyard.jobs.worker import Worker
    from modelyard.store.workspace import Workspace

    def work() -> None:
        workspace = Workspace.open(Settings.load(OPTIONS.home), create=False)
        try:
            worker = Worker(workspace, concurrency=1)
            worker.stop_event = stop
            worker.run(until_idle=True, handle_signals=False)
        finally:
            workspace.close()

    thread = threading.Thread(target=work, name="local-worker", daemon=True)
    thread.start()
    return thread


@app.command("batch")
def batch(
    model: Annotated[str, typer.Argument(help="NAME@VERSION, NAME@ALIAS or NAME.")],
    input_path: Annotated[Path, typer.Option("--input", "-i", help="Folder of images, .csv/.parquet table "
                                             "or .npz arrays.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Result file: .parquet, .csv or .npz.")],
    key: Annotated[str | None, typer.Option(help="Table column / npz array naming each row (default: row "
                                            "number; images: file name).")] = None,
    columns: Annotated[list[str] | None, typer.Option("--column", help="Feature column, in order "
                                                      "(repeatable; default: all but the key).")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Rows per chunk (unit of progress and "
                                            "resumption).")] = 256,
    backend: Annotated[str, typer.Option(help="auto or backend:device.")] = "auto",
    max_rows_per_second: Annotated[float | None, typer.Option("--max-rows-per-second",
                                                              help="Throttle.")] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Detectors: the score a box needs (default: the model's); the output has one row per box.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="With executor = \"ray\": spread the chunks over this "
                                         "many Ray workers.")] = 1,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Print the job id and return.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False,
) -> None:
    """Run a registered model over a dataset as a durable, resumable job.

    The output has the input key on every row. Without --url the job runs here (a local worker); with a server,
    the input is uploaded, its worker runs the job and the output is downloaded to --output."""
    from modelyard.core.errors import InvalidInput, ModelyardError

    input_path, output = input_path.expanduser().resolve(), output.expanduser().resolve()
    output_format = output.suffix.lower().lstrip(".")
    if output_format not in ("parquet", "csv", "npz"):
        raise InvalidInput(f"--output {output.name}: output must end in .parquet, .csv or .npz")
    if not input_path.exists():
        raise InvalidInput(f"--input {input_path}: no such file or folder")
    spec = {"model": model, "key": key, "columns": columns or None, "chunk_size": chunk_size, "backend": backend,
            "max_rows_per_second": max_rows_per_second, "workers": workers}
    if threshold is not None:
        spec["threshold"] = threshold
    with get_client() as client:
        # the owner in-process is on this machine: the job reads and writes these paths itself; any other client
        # sends the input as blobs and downloads the output (the server's disk is not this machine's)
        if client.in_process and client.token is None:
            spec.update(input=str(input_path), output=str(output))
        else:
            files = ({p.relative_to(input_path).as_posix(): p for p in sorted(input_path.rglob("*"))
                      if p.is_file() and not p.name.startswith(".")} if input_path.is_dir()
                     else {input_path.name: input_path})
            spec.update(input_files=client.blobs.put_files(files), output_format=output_format)
        job = client.jobs.submit("batch.predict", spec)
        if no_wait:
            print_json(job) if as_json else console.print(job["id"], highlight=False)
            return
        stop = threading.Event()
        local = _run_local_worker(stop) if client.in_process else None
        last = {"message": None}

        def note(state: dict) -> None:
            message = state["progress"]["message"]
            if not as_json and message and message != last["message"]:
                last["message"] = message
                console.print(f"{state['id']} {state['status']} {state['progress']['fraction']:.0%} {message}",
                              highlight=False)

        try:
            job = client.jobs.wait(job["id"], on_update=note)
        finally:
            stop.set()
            if local is not None:
                local.join(timeout=30)
        if job["status"] == "succeeded" and job["result"].get("output_blob"):
            client.blobs.get(job["result"]["output_blob"]["digest"], output)
            job["result"]["output"] = str(output)
    if as_json:
        print_json(job)
    elif job["status"] == "succeeded":
        result = job["result"]
        console.print(f"{job['id']} succeeded: {result['rows']} rows of {result['model']} → {result['output']}",
                      highlight=False)
    if job["status"] != "succeeded":
        raise ModelyardError(f"batch job {job['id']} {job['status']}: {job['error'] or job['progress']['message']}")
