"""``modelyard migrate ...``: code analysis and migration (migrate_code), model conversion, coverage and compare
(migrate_model), benchmark, optimisation and the whole pipeline (migrate_optimize). Each module adds its commands
to this Typer app."""

from __future__ import annotations

import typer

from modelyard.cli import migrate_code, migrate_model, migrate_optimize

HELP = "Migrate GPU PyTorch code and models to another accelerator."

app = typer.Typer(help=HELP, no_args_is_help=True)

migrate_code.register(app)
migrate_model.register(app)
migrate_optimize.register(app)
