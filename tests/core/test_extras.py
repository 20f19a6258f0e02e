"""Optional dependencies: every third-party import is a base dependency or declared with the extra that installs
it, and a missing one is one clear line naming that extra."""

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

from modelyard.core import extras
from modelyard.core.extras import OPTIONAL_MODULES, MissingDependency, install_hint, missing_dependency, require

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# base dependency (pyproject [project] dependencies) -> the name it is imported as
BASE_IMPORTS = {
    "numpy": "numpy", "pydantic": "pydantic", "pyyaml": "yaml", "typer": "typer", "rich": "rich", "httpx": "httpx",
    "fastapi": "fastapi", "starlette": "starlette", "uvicorn": "uvicorn", "sqlalchemy": "sqlalchemy",
    "alembic": "alembic", "psutil": "psutil", "swagger-ui-bundle-v2": "swagger_ui_bundle", "libcst": "libcst",
    "httpx2": "httpx2",  # not imported by us: starlette's TestClient uses it
    "jinja2": "jinja2", "python-multipart": "python_multipart",  # the console (FastAPI parses forms with the latter)
    "cryptography": "cryptography",  # edge bundles are signed by the platform and verified by the agent (Ed25519)
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported_top_level_modules() -> dict[str, str]:
    """Every module imported anywhere in the package (also inside functions) -> one file importing it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "modelyard").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_base_imports_match_the_declared_base_dependencies():
    assert {_name(r) for r in PYPROJECT["project"]["dependencies"]} == set(BASE_IMPORTS)


def test_every_third_party_import_is_a_base_dependency_or_a_declared_optional_one():
    known = set(sys.stdlib_module_names) | set(BASE_IMPORTS.values()) | set(OPTIONAL_MODULES) | {"modelyard"}
    undeclared = {name: where for name, where in _imported_top_level_modules().items() if name not in known}
    assert not undeclared, f"declare these in pyproject.toml and core/extras.py: {undeclared}"


def test_each_optional_module_is_listed_in_its_extra():
    extras_table = PYPROJECT["project"]["optional-dependencies"]
    for module, (distribution, extra) in OPTIONAL_MODULES.items():
        assert extra in extras_table, f"{module}: no extra [{extra}] in pyproject.toml"
        assert distribution in {_name(r) for r in extras_table[extra]}, f"{module}: {distribution} not in [{extra}]"


def test_the_demo_install_set_has_what_the_demo_imports():
    """`make demo` installs .[ml,openvino,llm] only: the sample tables need pandas and palmerpenguins from there,
    the ladder step transformers, peft, gguf and the openai client."""
    demo = {_name(r) for extra in ("ml", "openvino", "llm")
            for r in PYPROJECT["project"]["optional-dependencies"][extra]}
    assert {"pandas", "palmerpenguins", "scikit-learn", "torch", "onnxruntime", "openvino", "transformers", "peft",
            "gguf", "openai"} <= demo
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-e '.[ml,openvino,llm]'" in makefile


def test_require_names_the_extra_when_the_module_is_missing(monkeypatch):
    monkeypatch.setitem(OPTIONAL_MODULES, "modelyard_absent_package", ("absent-package", "ml"))
    with pytest.raises(MissingDependency) as caught:
        require("modelyard_absent_package.sub")
    assert str(caught.value) == "this needs absent-package: pip install 'modelyard[ml]'"
    assert caught.value.code == "missing_dependency" and caught.value.status == 503
    assert require("pandas") is sys.modules["pandas"]
    with pytest.raises(KeyError, match="not a declared optional dependency"):
        require("json")


def test_missing_dependency_maps_only_declared_modules(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ModuleNotFoundError) as caught:
        import pandas  # noqa: F401
    assert str(missing_dependency(caught.value)) == install_hint("pandas") == (
        "this needs pandas: pip install 'modelyard[ml]'")
    assert missing_dependency(ModuleNotFoundError("x", name="not_declared_anywhere")) is None
    assert missing_dependency(ImportError("cannot import name x")) is None
    assert extras.install_hint("PIL.Image") == "this needs pillow: pip install 'modelyard[ml]'"
