"""``modelyard tokens create | list | revoke`` (admin)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli._common import console, get_client, print_json

app = typer.Typer(no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine output.")]


@app.command("create")
def create(
    role: Annotated[str, typer.Option(help="viewer (read), editor (read + write) or admin (+ tokens).")],
    name: Annotated[str | None, typer.Option(help="A label for the token (default: the role).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed once."""
    with get_client() as client:
        token = client.tokens.create(name or role, role)
    if as_json:
        print_json(token)
        return
    console.print(f"{token['id']} {escape(token['name'])} ({token['role']}); secret, shown once:")
    console.print(token["token"], highlight=False, soft_wrap=True)


@app.command("list")
def list_tokens(as_json: JsonOpt = False) -> None:
    """List tokens (never their secrets)."""
    from rich.table import Table

    with get_client(read_only=True) as client:
        data = client.tokens.list()
    if as_json:
        print_json(data)
        return
    table = Table("id", "name", "role", "prefix", "created", "last used", "state", box=None)
    for t in data["items"]:
        table.add_row(
            t["id"],
            escape(t["name"]),
            t["role"],
            t["prefix"] + "…",
            t["created_at"],
            t["last_used_at"] or "-",
            "active" if t["active"] else f"[red]revoked {t['revoked_at']}[/]",
        )
    console.print(table)


@app.command("revoke")
def revoke(token_id: str, as_json: JsonOpt = False) -> None:
    """Revoke a token: it stops working at once."""
    with get_client() as client:
        token = client.tokens.revoke(token_id)
    if as_json:
        print_json(token)
    else:
        console.print(f"{token['id']} {escape(token['name'])} revoked")
