"""``modelyard jobs list | show | logs | wait | cancel | submit | kinds``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)

STATUS_STYLE = {"queued": "yellow", "running": "cyan", "succeeded": "green", "failed": "red", "cancelled": "magenta"}
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _load_spec(spec_file: Path | None, sets: list[str]) -> dict:
    from modelyard.core.errors import InvalidInput

    spec: dict = {}
    if spec_file is not None:
        if not spec_file.is_file():
            raise InvalidInput(f"--spec: no such file {spec_file}")
        import yaml

        try:
            loaded = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--spec {spec_file}: not valid YAML/JSON ({exc.__class__.__name__})") from exc
        if not isinstance(loaded, dict):
            raise InvalidInput(f"--spec {spec_file}: must hold a mapping")
        spec.update(loaded)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {item!r}: expected key=value")
        target = spec
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = _parse_value(value)
    return spec


def _local_files(items: list[str]) -> dict[str, Path]:
    """``--file NAME=PATH`` options as ``name -> local file`` (a folder contributes ``NAME/<relative path>``)."""
    from modelyard.core.errors import InvalidInput

    found: dict[str, Path] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        path = Path(raw or name).expanduser()
        name = name if sep else path.name
        if not path.exists():
            raise InvalidInput(f"--file {item!r}: no such file or folder {path}")
        if path.is_dir():
            for inner in sorted(path.rglob("*")):
                if inner.is_file() and not any(p.startswith(".") for p in inner.relative_to(path).parts):
                    found[f"{name}/{inner.relative_to(path).as_posix()}"] = inner
        else:
            found[name] = path
    return found


@app.command("submit")
def submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. blob.verify (see 'modelyard jobs kinds').")],
    spec_file: Annotated[Path | None, typer.Option("--spec", help="Spec file (YAML or JSON).")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="Spec field key=value (JSON values).")] = None,
    files: Annotated[list[str] | None, typer.Option(
        "--file", help="NAME=PATH: upload a local file (or a folder, file by file under NAME/) and name it in the "
                       "spec's files; relative paths in the spec resolve among them.")] = None,
    wait_: Annotated[bool, typer.Option("--wait", help="Wait for the job to end, with a progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job."""
    spec = _load_spec(spec_file, sets or [])
    with get_client() as client:
        if files:
            spec["files"] = {**spec.get("files", {}), **client.blobs.put_files(_local_files(files))}
        job = client.jobs.submit(kind, spec)
        if wait_:
            job = _wait(client, job["id"], None, quiet=as_json)
    if as_json:
        print_json(job)
    else:
        console.print(f"{job['id']} {_status(job['status'])}")
        if wait_:
            _print_outcome(job)
    if wait_ and job["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, failed or cancelled")] = None,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only jobs submitted by this token name.")] = None,
    limit: Annotated[int, typer.Option(help="Page size (1-500).")] = 50,
    before: Annotated[str | None, typer.Option(help="Cursor from the previous page's 'next'.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        page = client.jobs.list(status=status, kind=kind, owner=owner, limit=limit, before=before)
    if as_json:
        print_json(page)
        return
    table = Table("id", "kind", "status", "progress", "owner", "created", box=None)
    for job in page["items"]:
        table.add_row(job["id"], job["kind"], _status(job["status"]),
                      escape(f"{job['progress']['fraction']:.0%} {job['progress']['message']}"), escape(job["owner"]),
                      (job["created_at"] or "")[:19])
    console.print(table)
    if page["next"]:
        console.print(f"more: --before {page['next']}")


@app.command("show")
def show(job_id: str, as_json: JsonOpt = False) -> None:
    """Show one job."""
    with get_client(read_only=True) as client:
        job = client.jobs.get(job_id)
    if as_json:
        print_json(job)
        return
    console.print(f"[bold]{job['id']}[/] {job['kind']} {_status(job['status'])} "
                  f"{job['progress']['fraction']:.0%} {escape(job['progress']['message'])}")
    console.print(f"owner {job['owner'] or '-'}, attempts {job['attempts']}, created {job['created_at']}, "
                  f"started {job['started_at'] or '-'}, finished {job['finished_at'] or '-'}")
    console.print("spec: " + json.dumps(job["spec"]), highlight=False, soft_wrap=True)
    _print_outcome(job)


def _print_outcome(job: dict) -> None:
    if job["error"]:
        console.print(f"[red]error:[/] {escape(job['error'])}", highlight=False, soft_wrap=True)
    if job["result"] is not None:
        console.print("result: " + json.dumps(job["result"], indent=2), highlight=False, soft_wrap=True)


@app.command("logs")
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print a job's log."""
    with get_client(read_only=True) as client:
        if follow:
            for text in client.jobs.follow_logs(job_id):
                sys.stdout.write(text)
                sys.stdout.flush()
        else:
            text, _, _ = client.jobs.logs(job_id)
            sys.stdout.write(text)


def _wait(client, job_id: str, timeout: float | None, quiet: bool) -> dict:
    if quiet or not console.is_terminal:
        last = {"message": None}

        def note(job: dict) -> None:
            if not quiet and job["progress"]["message"] != last["message"]:
                last["message"] = job["progress"]["message"]
                console.print(f"{job['status']} {job['progress']['fraction']:.0%} {last['message']}")

        return client.jobs.wait(job_id, timeout=timeout, on_update=note)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(job_id, total=1.0)

        def update(job: dict) -> None:
            bar.update(task, completed=job["progress"]["fraction"],
                       description=f"{job_id} {job['status']} {job['progress']['message']}")

        return client.jobs.wait(job_id, timeout=timeout, on_update=update)


@app.command("wait")
def wait(
    job_id: str,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds (exit 1).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Wait for a job to end, with a progress bar; exits non-zero unless it succeeded."""
    from modelyard.core.errors import ModelyardError

    with get_client(read_only=True) as client:
        try:
            job = _wait(client, job_id, timeout, quiet=as_json)
        except TimeoutError as exc:
            raise ModelyardError(str(exc), code="timeout") from exc
    if as_json:
        print_json(job)
    else:
        console.print(f"{job['id']} {_status(job['status'])}")
        _print_outcome(job)
    if job["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("cancel")
def cancel(job_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a job (a queued one at once; a running one's process tree is killed)."""
    with get_client() as client:
        job = client.jobs.cancel(job_id)
    if as_json:
        print_json(job)
    else:
        console.print(
            f"{job['id']} {_status(job['status'])}" + (" (cancel requested)" if job["cancel_requested"] else "")
        )


@app.command("kinds")
def kinds(
    name: Annotated[str | None, typer.Argument(help="One kind: show each spec field with its type and default.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """List the registered job kinds and their spec fields (required ones marked *)."""
    from rich.table import Table

    from modelyard.core.errors import NotFound

    with get_client(read_only=True) as client:
        data = client.jobs.kinds()
    if name is not None:
        chosen = [k for k in data["items"] if k["name"] == name]
        if not chosen:
            raise NotFound(f"unknown job kind {name!r}; known kinds: {', '.join(k['name'] for k in data['items'])}")
        data = {**data, "items": chosen}
    if as_json:
        print_json(data)
        return
    if name is not None and data["items"][0].get("spec_schema"):
        kind = data["items"][0]
        console.print(f"[bold]{escape(kind['name'])}[/]: {escape(kind.get('description') or '')}", highlight=False)
        table = Table("field", "type", "default", box=None)
        for field in spec_fields(kind["spec_schema"]):
            table.add_row(escape(field["name"]), escape(field["type"]),
                          "[bold]required[/]" if field["required"] else escape(json.dumps(field["default"])))
        console.print(table)
        return
    table = Table("kind", "idempotent", "description", "spec fields (* required)", box=None)
    for kind in data["items"]:
        fields = ", ".join(f["name"] + ("*" if f["required"] else "") for f in spec_fields(kind.get("spec_schema")))
        table.add_row(kind["name"], "yes" if kind.get("idempotent") else "no",
                      escape(kind.get("description") or "")
                      or f"[red]unavailable:[/] {escape(str(kind.get('reason')))}",
                      escape(fields) or "-")
    console.print(table)


def spec_fields(schema: dict | None) -> list[dict]:
    """``[{name, type, required, default}]`` of a spec's JSON schema, in declaration order."""
    if not schema:
        return []
    required = set(schema.get("required", []))
    out = []
    for field, info in schema.get("properties", {}).items():
        out.append({"name": field, "type": _schema_type(info), "required": field in required,
                    "default": info.get("default")})
    return out


def _schema_type(info: dict) -> str:
    if "enum" in info:
        return " | ".join(json.dumps(v) for v in info["enum"])
    if "anyOf" in info:
        return " | ".join(_schema_type(option) for option in info["anyOf"])
    kind = info.get("type", "object")
    if kind == "array":
        return f"list[{_schema_type(info.get('items', {}))}]"
    return {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "null"}.get(kind, kind)
