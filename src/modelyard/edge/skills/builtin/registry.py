"""Find and load the built-in skills (one folder each next to this module)."""

from __future__ import annotations

import threading
from pathlib import Path

from modelyard.core.errors import NotFound
from modelyard.edge.skills.manifest import MANIFEST_FILE, load_logic, load_manifest

BUILTIN_DIR = Path(__file__).parent
_LOADED: dict[str, object] = {}
_LOCK = threading.Lock()


def builtin_dirs() -> dict[str, Path]:
    """``{skill name: folder}`` for every built-in skill (names use hyphens, folders underscores)."""
    return {folder.name.replace("_", "-"): folder for folder in sorted(BUILTIN_DIR.iterdir())
            if (folder / MANIFEST_FILE).is_file()}


def standalone_builtins() -> list[str]:
    """Built-in skills that run without configuration (object-counting needs a detector model, for example)."""
    return [name for name, folder in builtin_dirs().items()
            if not load_manifest(folder).config.global_.get("required")]


def builtin_dir(name: str) -> Path:
    folders = builtin_dirs()
    if name not in folders:
        raise NotFound(f"no built-in skill {name!r} (one of {', '.join(folders)})")
    return folders[name]


def load_builtin(name: str, config: dict | None = None):
    """The skill's logic module, set up once per process with ``config`` (default: {})."""
    with _LOCK:
        if name not in _LOADED:
            folder = builtin_dir(name)
            logic = load_logic(folder, load_manifest(folder))
            logic.setup(config or {})
            _LOADED[name] = logic
        return _LOADED[name]
