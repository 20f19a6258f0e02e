"""The import direction of ARCHITECTURE.md, enforced by import-linter's contracts in pyproject.toml."""

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _subpackages(package: Path) -> set[str]:
    return {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def test_imports_point_one_way():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in proc.stdout, proc.stdout


def test_the_contract_lists_every_package():
    """A new top-level package must be placed in the layers, or the contract would silently ignore it."""
    layers = CONTRACTS[0]["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    packages = {f"modelyard.{name}" for name in _subpackages(REPO / "src" / "modelyard")}
    assert packages <= named, f"packages missing from the import contract: {sorted(packages - named)}"


def test_the_migrate_contracts_list_every_subpackage():
    """Likewise inside migrate: every subpackage is a layer or the standalone ``code``."""
    named = set()
    for contract in CONTRACTS:
        if contract.get("containers") == ["modelyard.migrate"]:
            named |= set(contract["layers"])
        for key in ("source_modules", "forbidden_modules"):
            named |= {m.removeprefix("modelyard.migrate.") for m in contract.get(key, ())
                      if m.startswith("modelyard.migrate.")}
    missing = _subpackages(REPO / "src" / "modelyard" / "migrate") - named
    assert not missing, f"migrate subpackages missing from the import contracts: {sorted(missing)}"
