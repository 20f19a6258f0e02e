"""``modelyard migrate ...``: code analysis and migration (migrate_code) and model conversion, coverage and
compare (migrate_model). Each module adds its commands to this Typer app."""

from __future__ import annotations

import typer

from modelyard.cli import migrate_code, migrate_model

HELP = "Migrate GPU PyTorch code and models to another accelerator."

app = typer.Typer(help=HELP, no_args_is_help=True)

migrate_code.register(app)
migrate_model.register(app)
