"""The import direction of ARCHITECTURE.md, enforced by import-linter's contracts in pyproject.toml, and no import
cycles anywhere in modelyard (grimp's import graph, imports inside functions included)."""

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
    proc = subprocess.run([str(lint), str(REPO / "pyproject.toml"), "--no-cache"],
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


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the import graph is deep enough to trouble recursion); components > 1 module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_strongly_connected_finds_cycles_and_only_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    assert sorted(_strongly_connected(edges)) == [["a", "b", "c"], ["d", "e"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """No two modules of modelyard import each other, even through a chain or an import inside a function
    (grimp reads every import statement of a module, function bodies included)."""
    import grimp

    graph = grimp.build_graph("modelyard", cache_dir=None)
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    cycles = _strongly_connected(edges)
    lines = []
    for component in cycles:
        lines.append(" <-> ".join(component))
        for importer in component:
            for imported in component:
                for detail in graph.get_import_details(importer=importer, imported=imported):
                    lines.append(f"    {importer}:{detail['line_number']} imports {imported}")
    assert not cycles, "import cycles:\n" + "\n".join(lines)
