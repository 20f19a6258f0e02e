"""The command tree: every command is ``modelyard <noun> <verb>``, the shortcuts are those commands, and
docs/cli.md is what the help says today."""

import importlib.util
from pathlib import Path

import typer
import typer.core

from modelyard.cli.main import NOUNS, SHORTCUTS, app

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_up_to_date():
    expected = _generator().render()
    actual = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def test_every_top_level_command_is_a_noun_or_a_declared_shortcut():
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="modelyard")
    names = set(root.list_commands(ctx))
    assert names == set(NOUNS) | set(SHORTCUTS)
    for noun in NOUNS:
        group = root.get_command(ctx, noun)
        assert isinstance(group, typer.core.TyperGroup) and group.list_commands(typer.Context(group, parent=ctx)), noun
    for shortcut in SHORTCUTS:
        assert not isinstance(root.get_command(ctx, shortcut), typer.core.TyperGroup), shortcut


def test_each_shortcut_is_its_noun_verb_command():
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="modelyard")
    for shortcut, (noun, verb) in SHORTCUTS.items():
        group = root.get_command(ctx, noun)
        full = group.get_command(typer.Context(group, parent=ctx), verb)
        short = root.get_command(ctx, shortcut)
        assert short.callback.__wrapped__ is full.callback.__wrapped__, shortcut
        assert [p.opts for p in short.params] == [p.opts for p in full.params], shortcut
