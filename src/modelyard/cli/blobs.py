"""``modelyard blobs put | get | pin | unpin | pins | gc``: the content-addressed store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


@app.command("put")
def put(
    paths: Annotated[list[Path], typer.Argument(help="Files to store.")],
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="Keep them through 'blobs gc' (default) or let gc "
                                                             "delete them once nothing refers to them.")] = True,
    note: Annotated[str, typer.Option("--note", help="Why they are pinned.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Store files; prints each one's sha256 digest (identical content is stored once). Files stored here are
    pinned: nothing refers to them yet, and 'blobs gc' must not take them."""
    with get_client() as client:
        items = [{"path": str(p), **client.blobs.put(p, pin=pin, note=note)} for p in paths]
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
    with get_client(read_only=True) as client:
        path = client.blobs.get(digest, output)
    console.print(f"wrote {path}")


@app.command("pin")
def pin_command(
    digest: Annotated[str, typer.Argument(help="sha256:... of a stored blob.")],
    note: Annotated[str, typer.Option("--note", help="Why it is kept.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Keep a stored blob through 'blobs gc' even when nothing refers to it."""
    with get_client() as client:
        result = client.blobs.pin(digest, note=note)
    if as_json:
        print_json(result)
    else:
        console.print(f"pinned {result['digest']}", highlight=False)


@app.command("unpin")
def unpin_command(digest: Annotated[str, typer.Argument(help="sha256:... of a pinned blob.")]) -> None:
    """Let 'blobs gc' delete a blob again once nothing refers to it (the token that pinned it, or an admin)."""
    with get_client() as client:
        result = client.blobs.unpin(digest)
    console.print(f"unpinned {result['digest']}", highlight=False)


@app.command("pins")
def pins_command(as_json: JsonOpt = False) -> None:
    """List pinned blobs."""
    with get_client() as client:
        data = client.blobs.pins()
    if as_json:
        print_json(data)
        return
    for item in data["items"]:
        console.print(f"{item['digest']} {item['size'] if item['size'] is not None else '(missing)':>10} "
                      f"{item['created_at'][:19]} {item['created_by']} {item['note']}", highlight=False)


@app.command("gc")
def gc_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing.")] = False,
    grace_s: Annotated[float | None, typer.Option("--grace-s", help="Keep blobs written less than this many "
                                                                    "seconds ago (default: setting "
                                                                    "blob_gc_grace_s, a day).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete blobs that no dataset, model version, run, unfinished job, job result or pin refers to (admin).

    Blobs younger than the grace period are kept, so an upload or import still running keeps its files.
    """
    with get_client() as client:
        result = client.blobs.gc(dry_run=dry_run, grace_s=grace_s)
    if as_json:
        print_json(result)
        return
    verb = "would delete" if result["dry_run"] else "deleted"
    if result["dry_run"]:
        for digest in result["digests"]:
            console.print(f"{verb} {digest}", highlight=False)
    console.print(f"{verb} {result['deleted']} blob(s), {result['freed_bytes']} bytes; kept "
                  f"{result['kept_referenced']} in use or pinned and {result['kept_recent']} younger than "
                  f"{result['grace_s']:g} s", highlight=False)
