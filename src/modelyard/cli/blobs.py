"""``modelyard blobs put | get``: the content-addressed store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)


@app.command("put")
def put(
    paths: Annotated[list[Path], typer.Argument(help="Files to store.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine output.")] = False,
) -> None:
    """Store files; prints each one's sha256 digest (identical content is stored once)."""
    with get_client() as client:
        items = [{"path": str(p), **client.blobs.put(p)} for p in paths]
    if as_json:
        print_json({"schema": "modelyard.blob-list/1", "items": items})
    else:
        for item in items:
            console.print(f"{item['digest']} {item['size']:>10} {item['path']}", highlight=False)


@app.command("get")
def get(
    digest: str,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the blob.")],
) -> None:
    """Fetch a blob, verified against its digest, to a file."""
    with get_client() as client:
        path = client.blobs.get(digest, output)
    console.print(f"wrote {path}")
