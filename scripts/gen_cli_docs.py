"""Write docs/cli.md, the command reference, from the CLI's own help (the text `--help` prints).

Run it after changing a command: `python scripts/gen_cli_docs.py`. `tests/cli/test_cli_docs.py` fails while the file
is out of date; `--check` does the same here (exit 1 when it differs).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import typer
import typer.core

from modelyard.cli.main import NOUNS, SHORTCUTS, app

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"

HEADER = """# Command reference

Generated from the commands' `--help` by `scripts/gen_cli_docs.py`; `tests/cli/test_cli_docs.py` fails when this page
is out of date. Every command is `modelyard <noun> <verb>`; the shortcuts are the same commands under a shorter name
(same options, output and exit codes). The global options (`--home`, `--url`, `--token`, `--debug`) may stand
anywhere on the line.
"""


def _summary(command: typer.core.TyperCommand) -> str:
    return inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")


def _section(command: typer.core.TyperCommand, ctx: typer.Context, title: str) -> list[str]:
    lines = [f"### `{title}`", "", inspect.cleandoc(command.help or ""), ""]
    lines += ["```console", f"$ {title} {' '.join(command.collect_usage_pieces(ctx))}", "```", ""]
    for kind, heading in (("argument", "Arguments"), ("option", "Options")):
        records = [p.get_help_record(ctx) for p in command.get_params(ctx) if p.param_type_name == kind]
        records = [r for r in records if r is not None and r[0] != "--help"]
        if records:
            lines += [f"**{heading}**:", ""]
            lines += [f"* `{name}`" + (f": {text}" if text else "") for name, text in records]
            lines.append("")
    return lines


def render() -> str:
    """The whole page, as the current code's help describes it."""
    root = typer.main.get_command(app)
    root_ctx = typer.Context(root, info_name="modelyard")
    lines = [HEADER, "## The command tree", "", "| command | what it does |", "|---|---|"]
    details: list[str] = []
    for noun in NOUNS:
        group = root.get_command(root_ctx, noun)
        group_ctx = typer.Context(group, info_name=noun, parent=root_ctx)
        lines.append(f"| **`modelyard {noun}`** | {_summary(group)} |")
        details += [f"## `modelyard {noun}`", "", _summary(group), ""]
        for verb in group.list_commands(group_ctx):
            command = group.get_command(group_ctx, verb)
            lines.append(f"| `modelyard {noun} {verb}` | {_summary(command)} |")
            details += _section(command, typer.Context(command, info_name=verb, parent=group_ctx),
                                f"modelyard {noun} {verb}")
    lines += ["", "## Shortcuts", "", "| shortcut | same as |", "|---|---|"]
    lines += [f"| `modelyard {name}` | `modelyard {noun} {verb}` |" for name, (noun, verb) in SHORTCUTS.items()]
    lines += ["", "## Global options", ""]
    lines += [f"* `{name}`: {text}" for name, text in
              (p.get_help_record(root_ctx) for p in root.get_params(root_ctx)) if name != "--help"]
    lines += ["", *details]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"error: {DOC} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
