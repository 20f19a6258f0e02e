"""Entry point of the ``modelyard`` command.

An invocation builds only the part of the command tree it runs: ``modelyard data list`` imports ``cli/data.py`` and
builds the ``data`` group, not the other 120-odd commands (building a command reads its signature and type hints:
a tenth of a second for the whole tree, paid by every CLI process). ``modelyard --help``, an unknown command and the
module attribute ``app`` (docs, tests) get the whole tree. Each command module keeps heavy imports inside its
commands, so nothing here imports FastAPI, SQLAlchemy, httpx or the ML stack.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli import _common
from modelyard.cli._common import OPTIONS

ROOT_SETTINGS = dict(
    name="modelyard",
    help="Modelyard: migrate GPU PyTorch models to any accelerator, develop, deploy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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


# The command tree, declared once. Every command is ``modelyard <noun> <verb>``: noun -> (help, the modules whose
# module-level ``app`` holds its verbs). A later capability adds its module here.
NOUNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "system": ("This machine: create the workspace, run the server and the job worker, check the configuration "
               "(doctor), versions, inference backends.",
               ("system", "backends")),
    "jobs": ("Durable jobs: list, show, logs, wait, cancel, submit.", ("jobs",)),
    "tokens": ("API tokens (admin).", ("tokens",)),
    "blobs": ("Content-addressed blob store: put, get, pin, unpin, pins, gc.", ("blobs",)),
    "migrate": ("Migrate GPU PyTorch code and models to another accelerator.",
                ("migrate_code", "migrate_model", "migrate_optimize")),
    "data": ("Datasets: import tables and image folders as immutable versions; list, show, stats, prep, export, "
             "sample, delete.", ("data",)),
    "label": ("Data labeling: jobs on a dataset version or uploaded images, a queue, model proposals, team review, "
              "publish as the next dataset version; suggest what to label next (active learning with a random control "
              "arm), group unlabeled images.", ("label", "label_suggest")),
    "runs": ("Tracked training runs: params, metrics, logs, artifacts, dataset version; list, show, compare, "
             "delete.",
             ("runs",)),
    "automl": ("AutoML: search models for a dataset version under a time budget and a latency limit; register the "
               "winner.", ("automl",)),
    "train": ("Your own training code as a job: submit a script to N data-parallel workers (torchrun semantics), "
              "metrics as a run, checkpoints in the blob store.", ("train",)),
    "ladder": ("Fine-tune language models L0 -> L1 -> L2 (tune: LoRA or full, pretrain or sft, forgetting gate, "
               "lineage by content hash); show a model's ladder.", ("ladder",)),
    "models": ("Model registry: register versions, list, show (signature, card), alias, delete; evaluate on a dataset, "
               "batch inference.", ("models", "evaluate", "batch")),
    "services": ("Real-time services: deploy, list, show, logs, scale, stop, start, rollback, traffic, predict, "
                 "metrics, delete.", ("services", "deploy")),
    "skills": ("Skills (a model plus logic, run per video channel on devices): the market (list, show, measure, "
               "publish, template, install), EI-style REST services (serve), validation (check).", ("skills",)),
    "monitor": ("Model monitoring of services: capture traffic, drift / data quality / performance reports, "
                "feedback labels, alert rules and alerts.", ("monitor",)),
    "edge": ("Edge fleet: register devices, twins, logs, alarms, remote actions; package signed bundles; deploy "
             "them with a canary and automatic rollback.", ("edge",)),
}
# The documented top-level shortcuts (README, docs, demo): name -> (noun, verb). Same options, output and exit codes.
SHORTCUTS: dict[str, tuple[str, str]] = {
    "init": ("system", "init"),
    "server": ("system", "server"),
    "worker": ("system", "worker"),
    "version": ("system", "version"),
    "doctor": ("system", "doctor"),
    "backends": ("system", "backends"),
    "deploy": ("services", "deploy"),
    "batch": ("models", "batch"),
    "evaluate": ("models", "evaluate"),
    "tune": ("ladder", "tune"),
}


def _noun_app(noun: str) -> tuple[typer.Typer, dict[str, typer.models.CommandInfo]]:
    """The ``noun`` group (its modules imported now) and its verbs by name."""
    import importlib

    help_text, module_names = NOUNS[noun]
    noun_app = typer.Typer(help=help_text, no_args_is_help=True)
    verbs: dict[str, typer.models.CommandInfo] = {}
    for module_name in module_names:
        module_app = importlib.import_module(f"modelyard.cli.{module_name}").app
        noun_app.add_typer(module_app)
        verbs.update({command.name: command for command in module_app.registered_commands})
    return noun_app, verbs


def build_app(command: str | None = None) -> typer.Typer:
    """The command tree: all of it (``command`` None), or only what ``modelyard <command> ...`` runs (a noun's group
    or one shortcut), which parses, helps and fails exactly as the whole tree does for that command."""
    import inspect

    root = typer.Typer(**ROOT_SETTINGS)
    root.callback()(_global)
    nouns = list(NOUNS) if command is None else [command if command in NOUNS else SHORTCUTS[command][0]]
    verbs: dict[tuple[str, str], typer.models.CommandInfo] = {}
    for noun in nouns:
        noun_app, noun_verbs = _noun_app(noun)
        verbs.update({(noun, verb): info for verb, info in noun_verbs.items()})
        if command is None or command == noun:
            root.add_typer(noun_app, name=noun)
    for shortcut, (noun, verb) in SHORTCUTS.items():
        if command is not None and command != shortcut:
            continue
        callback = verbs[(noun, verb)].callback
        help_text = f"{inspect.getdoc(callback)}\n\nShortcut for 'modelyard {noun} {verb}'."
        root.command(shortcut, help=help_text, rich_help_panel="Shortcuts")(callback)
    return root


def __getattr__(name: str):
    # ``from modelyard.cli.main import app``: the whole tree, built on first use (the docs generator, the tests)
    if name == "app":
        whole = globals()["app"] = build_app()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def command_name(argv: list[str]) -> str | None:
    """The noun or shortcut ``argv`` (global options first, as :func:`hoist_global_options` leaves it) runs, or None
    when it names none (no command, ``--help``, a typo): those need the whole tree to answer."""
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in GLOBAL_VALUE_OPTIONS:
            index += 2
        elif arg.split("=", 1)[0] in GLOBAL_VALUE_OPTIONS or arg in GLOBAL_FLAGS:
            index += 1
        else:
            return arg if arg in NOUNS or arg in SHORTCUTS else None
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a ``ModelyardError`` becomes one line on stderr and exit code 1 (2 for bad input)."""
    from rich.markup import escape

    from modelyard.core.errors import InvalidInput, ModelyardError

    argv = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    try:
        build_app(command_name(argv))(args=argv, prog_name="modelyard", standalone_mode=True)
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
        from modelyard.core.extras import missing_dependency

        missing = missing_dependency(exc)
        if missing is not None:
            _common.err_console.print(f"[bold red]error:[/] {escape(str(missing))}", highlight=False, soft_wrap=True)
            return 1
        _common.err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
