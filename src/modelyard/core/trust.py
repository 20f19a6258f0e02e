"""Who may do what with a job spec: run code on the server, or name a path on the server's file system.

Job specs that arrive through the API are untrusted input. Two capabilities are kept for the ``admin`` role (and
for the workspace owner working in-process, who is on their own machine):

* **running code**: a ModelSpec ``entrypoint`` outside the allow-list (``SAFE_ENTRYPOINTS``: the built-in zoo) is
  imported and called with caller-chosen ``kwargs``, which is arbitrary code execution as the server's user;
* **server paths**: a spec field naming a file or folder on the server (``/data/x.csv``, ``~/.ssh``, ``../..``)
  reads or writes whatever the server process can.

Every other caller (``editor``) hands data, never code or paths: files uploaded to the blob store and named by a
relative name in the spec's ``files`` mapping, dataset versions and registered models; outputs go to the job's own
folder and the blob store. Each job kind checks its spec at submit time (``JobKind.authorize``) with these helpers,
so the CLI, the SDK and a raw ``POST /api/v1/jobs`` meet the same rule.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from modelyard.core.errors import Forbidden, InvalidInput

CODE_ROLE = "admin"
# "module" -> every public function defined in it may be an entrypoint for any caller; nothing else may
SAFE_ENTRYPOINT_MODULES = ("modelyard.runtime.zoo",)
_DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
MAX_FILES = 1_000_000
MAX_NAME_BYTES = 200  # below the file systems' 255, leaving room for temporary names


@dataclass(frozen=True)
class Caller:
    """Who submitted a job: the token's name and role (``viewer``, ``editor``, ``admin``)."""

    name: str
    role: str

    @property
    def trusted(self) -> bool:
        """May run code and name server paths (see the module docstring)."""
        return self.role == CODE_ROLE


def check_entrypoint(entrypoint: str | None, caller: Caller, field: str = "spec.entrypoint") -> None:
    """Refuse (403) an entrypoint outside the built-in zoo unless ``caller`` may run code."""
    if entrypoint is None or caller.trusted:
        return
    module_name, _, attr = entrypoint.partition(":")
    if module_name in SAFE_ENTRYPOINT_MODULES and attr and not attr.startswith("_") and "." not in attr:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr, None)
        if callable(factory) and getattr(factory, "__module__", None) == module_name:
            return
    raise Forbidden(
        f"{field}: {entrypoint!r} is not a built-in model factory; running code on the server needs the "
        f"{CODE_ROLE} role (allowed for every role: {', '.join(m + ':<factory>' for m in SAFE_ENTRYPOINT_MODULES)}; "
        "or upload the model as ONNX/OpenVINO, or register it and name modelyard://NAME@VERSION)",
        code="code_not_allowed",
    )


def is_server_path(value: str) -> bool:
    """True when ``value`` could point outside a job's own folder: absolute, ``~``, a drive, or ``..``."""
    text = value.replace("\\", "/")
    pure = PurePosixPath(text)
    return (pure.is_absolute() or text.startswith("~") or ".." in pure.parts
            or bool(pure.parts and ":" in pure.parts[0]))


def check_path(value: str | None, caller: Caller, field: str) -> None:
    """Refuse (403) a spec field naming a server path unless ``caller`` may; relative names are fine (they are
    resolved inside the job's own folder)."""
    if value is None or caller.trusted or not is_server_path(value):
        return
    raise Forbidden(
        f"{field}: {value!r} names a path on the server; only the {CODE_ROLE} role may do that. Upload the file "
        "(POST /api/v1/blobs) and name it by a relative name in the spec's files",
        code="server_path_not_allowed",
    )


def check_files(files: dict[str, str], field: str = "files") -> dict[str, str]:
    """Validate a ``relative name -> sha256 digest`` mapping (any caller): names stay inside their folder."""
    if len(files) > MAX_FILES:
        raise InvalidInput(f"{field}: more than {MAX_FILES} files")
    for name, digest in files.items():
        if not name or is_server_path(name) or name.endswith("/") or any(p in ("", ".") for p in name.split("/")):
            raise InvalidInput(f"{field}: {name!r} must be a relative file name such as 'model.onnx' or "
                               "'images/cat/1.png'")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise InvalidInput(f"{field}: {name!r} holds a control character (NUL, newline...); not a file name")
        if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in name.split("/")):
            raise InvalidInput(f"{field}: {name[:60]!r}...: a file or folder name longer than {MAX_NAME_BYTES} bytes")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidInput(f"{field}[{name!r}]: {digest!r} is not a sha256 digest")
    # "a" and "a/b" cannot both exist: one would be a file and a folder at once
    folders = {name.rsplit("/", 1)[0] for name in files if "/" in name}
    folders = {"/".join(f.split("/")[:i]) for f in folders for i in range(1, f.count("/") + 2)}
    clash = sorted(folders & files.keys())
    if clash:
        raise InvalidInput(f"{field}: {clash[0]!r} is both a file and the folder of other files")
    return files
