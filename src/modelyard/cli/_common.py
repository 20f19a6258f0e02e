"""What every CLI module shares: global options, the SDK client, JSON/human output, one-line errors."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape


def _console(stderr: bool = False) -> Console:
    # Piped output (CI logs, `| less`) is not wrapped at 80 columns: ids and digests must stay whole.
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=max(probe.width, 160))


console = _console()
err_console = _console(stderr=True)


@dataclass
class GlobalOptions:
    home: Path | None = None
    url: str | None = None
    token: str | None = None
    debug: bool = False


OPTIONS = GlobalOptions()


def get_client(read_only: bool = False):
    """The SDK client for this invocation: HTTP when ``--url`` is set, in-process on ``--home`` otherwise.

    Args:
        read_only: the command only reads. In-process on a workspace folder that does not exist, it then fails
            with one line saying where it looked, instead of creating an empty workspace to read nothing from
            (commands that store something still create it, as ``modelyard init`` does). Default False.
    """
    from modelyard.client import Client

    if read_only and not OPTIONS.url:
        _require_workspace()
    return Client(url=OPTIONS.url, token=OPTIONS.token, home=OPTIONS.home)


def _require_workspace() -> None:
    from modelyard.core.errors import WorkspaceError
    from modelyard.core.settings import default_home

    home = Path(OPTIONS.home).expanduser() if OPTIONS.home else default_home()
    if not home.exists():
        # NOTE: MODELYARD_HOME arrives as --home (typer's envvar), so "the default" is only ever ~/.modelyard
        why = "--home/MODELYARD_HOME" if OPTIONS.home else "the default; --home or MODELYARD_HOME pick another"
        raise WorkspaceError(f"no workspace at {home} ({why}): nothing is stored there yet. Run 'modelyard init"
                             f"{' --home ' + str(home) if OPTIONS.home else ''}' to create it, or pass --url to use "
                             "a server.")


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout (no rich markup, no wrapping)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1):
    """Print one clear line on stderr and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


SPEC_HELP = "ModelSpec file (.yaml/.json) or a registered model: modelyard://NAME@VERSION or modelyard://NAME@ALIAS."


def load_model_spec(arg: str):
    """A ModelSpec from a file, or from the registry for ``modelyard://NAME@VERSION|ALIAS`` (workspace ``--home``)."""
    from modelyard.registry.refs import is_registry_ref

    if is_registry_ref(arg):
        from modelyard.registry.resolve import spec_from_ref

        return spec_from_ref(arg, home=OPTIONS.home)
    from modelyard.runtime.spec import load_spec

    return load_spec(arg)


def run_action(action):
    """Call ``action``; a ModelyardError becomes one line on stderr (exit 2 for bad input, 1 otherwise)."""
    from modelyard.core.errors import InvalidInput, ModelyardError

    try:
        return action()
    except ModelyardError as exc:
        if OPTIONS.debug:
            raise
        fail(str(exc), code=2 if isinstance(exc, InvalidInput) else 1)
