"""The import direction of ARCHITECTURE.md, enforced by import-linter's contract in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_imports_point_one_way():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_the_contract_lists_every_package():
    """A new top-level package must be placed in the layers, or the contract would silently ignore it."""
    import tomllib

    layers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    packages = {f"modelyard.{p.name}" for p in (REPO / "src" / "modelyard").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= named, f"packages missing from the import contract: {sorted(packages - named)}"
