"""What a migrate job may read: uploaded files and a ModelSpec, checked against who submitted the job.

Every migrate job spec takes ``files`` (``relative name -> sha256 digest`` of files uploaded with
``POST /api/v1/blobs``). When the job runs they are copied (verified) into ``<job folder>/work/inputs/``, and every
relative path in the spec (``spec: cnn.yaml``, a ModelSpec's ``onnx``/``weights``/``dataset``/``inputs[].data``,
``data``, ``calib``, ``model``, ``target_model``, ``path``...) resolves there. Absolute paths, ``~`` and ``..`` name
the server's own files and need the admin role (``modelyard.core.trust``), as does an ``entrypoint`` outside the
built-in zoo: that is code, and code runs only where the caller's role allows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from modelyard.core.errors import InvalidInput, NotFound
from modelyard.core.jsonsafe import MAX_DEPTH, nests_deeper_than
from modelyard.core.trust import Caller, check_entrypoint, check_files, check_path, is_server_path

MAX_SPEC_FILE_BYTES = 1024 * 1024
FILES_FIELD = Field(default_factory=dict, description="relative name -> sha256 digest of files uploaded with POST "
                                                      "/api/v1/blobs; relative paths in the spec resolve among them")
INPUTS_DIR = "inputs"


def authorize_files(files: dict[str, str], workspace) -> None:
    """Names stay inside their folder and every digest is in the blob store."""
    check_files(files, "spec.files")
    missing = workspace.blobs.missing(list(files.values()))
    if missing:
        raise NotFound(f"spec.files: {len(missing)} file(s) are not in the blob store (upload them first with "
                       f"POST /api/v1/blobs), e.g. {missing[0]}")


def authorize_paths(spec, caller: Caller, *fields: str) -> None:
    """403 for each named field (a str, a list of str, or None) that names a server path the caller may not."""
    for field in fields:
        value = getattr(spec, field)
        for item in value if isinstance(value, list) else [value]:
            check_path(item, caller, f"spec.{field}")


def authorize_model_spec(value: str | dict[str, Any], files: dict[str, str], caller: Caller, workspace,
                         field: str = "spec.spec") -> None:
    """Check a job's ModelSpec: an inline mapping, or the name of an uploaded ``.yaml``/``.json`` in ``files``
    (read from the blob store here), or (admin) a spec file on the server. Its entrypoint must be in the zoo and
    its paths relative unless the caller may run code and name server paths."""
    from modelyard.runtime.spec import parse_spec

    if isinstance(value, str):
        check_path(value, caller, field)
        if caller.trusted and value not in files:
            return  # the admin's own spec file on the server; read when the job runs
        if value not in files:
            shown = ", ".join(sorted(files)[:5]) or "none"
            raise InvalidInput(f"{field}: {value!r} is not one of the uploaded files ({shown}); upload the spec and "
                               "name it in files, or give the ModelSpec inline")
        value = read_mapping_blob(workspace, files[value], value, field)
    spec = parse_spec(value)
    check_entrypoint(spec.entrypoint, caller, f"{field}.entrypoint")
    for name in ("weights", "onnx", "openvino", "dataset"):
        check_path(getattr(spec, name), caller, f"{field}.{name}")
    for index, item in enumerate(spec.inputs):
        check_path(item.data, caller, f"{field}.inputs[{index}].data")


def read_mapping_blob(workspace, digest: str, name: str, field: str) -> dict:
    """An uploaded YAML/JSON file (a ModelSpec, MIGRATION.yaml) as a mapping, for checking before the job runs."""
    import json

    import yaml

    if workspace.blobs.info(digest).size > MAX_SPEC_FILE_BYTES:
        raise InvalidInput(f"{field}: {name} is larger than {MAX_SPEC_FILE_BYTES} bytes; not a spec file")
    text = workspace.blobs.read_bytes(digest).decode("utf-8", errors="replace")
    # both parsers recurse per level of nesting: a hostile "[[[[..." would end in RecursionError (a 500)
    if name.endswith(".json") and nests_deeper_than(text):
        raise InvalidInput(f"{field}: {name} nests deeper than {MAX_DEPTH} levels; not a spec file")
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise InvalidInput(f"{field}: {name} is not valid {'JSON' if name.endswith('.json') else 'YAML'}: {exc}") \
            from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{field}: {name} does not hold a mapping")
    return data


def output_path(value: str | None, ctx, default: str | None = None) -> Path:
    """Where a job writes: a relative ``out`` always inside the job's own folder (never the worker's cwd, which
    may be on another process's import path, and never shared by two jobs); an absolute one (admin only, checked at
    submit) as given; None: ``default`` inside the job's folder, or the folder itself."""
    workdir = Path(ctx.workdir)
    if value is None:
        return workdir / default if default else workdir
    path = Path(value).expanduser()
    return path if path.is_absolute() else workdir / path


def materialize_inputs(files: dict[str, str], ctx) -> Path:
    """Copy the job's uploaded files (verified) into its ``inputs`` folder; returns the folder relative paths
    resolve against (created even when there are no files, so nothing resolves against the worker's cwd)."""
    folder = Path(ctx.workdir) / INPUTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    if files:
        from modelyard.core.settings import Settings
        from modelyard.store.blob_stores import open_blob_store

        open_blob_store(Settings.load(ctx.home)).materialize(files, folder)
    return folder


def resolve(value: str | None, folder: Path) -> str | None:
    """A spec path for the job: relative names inside ``folder``; absolute ones (authorized at submit) as given."""
    if value is None:
        return None
    return value if is_server_path(value) else str(folder / value)


def model_spec_in(value: str | dict[str, Any], folder: Path):
    """The job's ModelSpec: a spec file (relative names inside ``folder``) or an inline mapping whose relative
    paths resolve inside ``folder``."""
    from modelyard.runtime.spec import load_spec, parse_spec

    if isinstance(value, str):
        return load_spec(resolve(value, folder))
    return parse_spec(value, base_dir=folder)


def zip_to_blob(folder: Path, ctx) -> dict:
    """A folder the job wrote, as one zip in the blob store for the client to download
    (``{"digest", "size", "name"}``)."""
    import zipfile

    from modelyard.core.settings import Settings
    from modelyard.store.blob_stores import open_blob_store

    archive = Path(ctx.workdir) / f"{folder.name}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for item in sorted(folder.rglob("*")):
            if item.is_file() and item != archive:
                bundle.write(item, item.relative_to(folder).as_posix())
    blob = open_blob_store(Settings.load(ctx.home)).put_file(archive)
    return {"digest": "sha256:" + blob.digest, "size": blob.size, "name": archive.name}
