"""``modelyard system backends`` (shortcut ``modelyard backends``): every inference backend:device, whether it
runs here and, if not, why."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, print_json

app = typer.Typer()


@app.command("backends")
def backends_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print modelyard.backends/1 JSON.")] = False,
) -> None:
    """List inference backends (torch, onnxruntime, openvino) per device, available or why not."""
    from modelyard.runtime.registry import list_backends

    statuses = list_backends()
    if json_out:
        print_json({"schema": "modelyard.backends/1", "backends": [s.to_dict() for s in statuses]})
        return
    from rich.table import Table

    table = Table("backend", "available", "runs", "why not")
    for status in statuses:
        table.add_row(
            status.name,
            "[green]yes[/]" if status.available else "[dim]no[/]",
            ", ".join(status.formats),
            status.reason,
        )
    console.print(table)
