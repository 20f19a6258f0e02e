"""Entry point of the ``modelyard`` command. Sub-apps are imported here; each keeps heavy imports inside its
commands so ``modelyard --help`` stays instant."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli import _common
from modelyard.cli._common import OPTIONS

app = typer.Typer(
    name="modelyard",
    help="Modelyard: migrate GPU PyTorch models to any accelerator, develop, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global(
    home: Annotated[
        Path | None, typer.Option("--home", envvar="MODELYARD_HOME", help="Workspace folder (default ~/.modelyard).")
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", envvar="MODELYARD_URL", help="Server URL; in-process on --home when unset.")
    ] = None,
    token: Annotated[str | None, typer.Option("--token", envvar="MODELYARD_TOKEN", help="API token.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    OPTIONS.home = home
    OPTIONS.url = url
    OPTIONS.token = token
    OPTIONS.debug = debug


def _register() -> None:
    from modelyard.cli import blobs, jobs, system, tokens

    system.register(app)
    app.add_typer(jobs.app, name="jobs", help="Durable jobs: list, show, logs, wait, cancel, submit.")
    app.add_typer(tokens.app, name="tokens", help="API tokens (admin).")
    app.add_typer(blobs.app, name="blobs", help="Content-addressed blob store: put, get.")
    for name, module_name in EXTRA_APPS.items():
        module = __import__(module_name, fromlist=["app"])
        app.add_typer(module.app, name=name, help=module.HELP)
    for module_name in EXTRA_COMMAND_MODULES:
        module = __import__(module_name, fromlist=["register"])
        module.register(app)


# name -> module with ``app`` (a Typer) and ``HELP``; later issues add a line each.
EXTRA_APPS: dict[str, str] = {
    "migrate": "modelyard.cli.migrate",
    "data": "modelyard.cli.data",
    "runs": "modelyard.cli.runs",
    "automl": "modelyard.cli.automl",
    "models": "modelyard.cli.models",
    "services": "modelyard.cli.services",
}
# modules with ``register(app)`` adding top-level commands.
EXTRA_COMMAND_MODULES: list[str] = [
    "modelyard.cli.backends",
    "modelyard.cli.evaluate",
    "modelyard.cli.deploy",
    "modelyard.cli.batch",
]

_register()


GLOBAL_VALUE_OPTIONS = ("--home", "--url", "--token")
GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let global options stand anywhere (``modelyard init --home /tmp/w``) by moving them before the command."""
    front, rest, index = [], [], 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        if arg in GLOBAL_VALUE_OPTIONS and index + 1 < len(argv):
            front += [arg, argv[index + 1]]
            index += 2
            continue
        if arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS or arg in GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``ModelyardError`` becomes one line on stderr and exit code 1 (2 for bad input)."""
    from rich.markup import escape

    from modelyard.core.errors import InvalidInput, ModelyardError

    argv = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, prog_name="modelyard", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ModelyardError as exc:
        if OPTIONS.debug:
            raise
        _common.err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2 if isinstance(exc, InvalidInput) else 1
    except KeyboardInterrupt:
        _common.err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if OPTIONS.debug:
            raise
        _common.err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
