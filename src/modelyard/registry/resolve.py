"""``modelyard://NAME@VERSION`` and ``NAME@ALIAS`` -> local, verified files and a ModelSpec.

Anything that accepts a ModelSpec can accept a registry reference through ``resolve_spec``: the version's files
are copied out of the blob store once (verified on copy) into ``<home>/registry/cache/<version id>/`` and
re-hashed on every resolve, so a tampered or rotted cache is re-copied, never loaded.

Example::

    spec = resolve_spec(workspace, "modelyard://resnet@production")
    runner = get_backend("onnxruntime:cpu").load(spec.source())
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.registry.refs import ModelRef, parse_ref
from modelyard.registry.versions import ModelRegistry, ModelVersion
from modelyard.store.workspace import Workspace

_IDENT = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class ResolvedModel:
    """A version with its files on local disk."""

    version: ModelVersion
    folder: Path

    @property
    def path(self) -> Path:
        """The file a runtime loads (``model.onnx`` or ``model.xml``)."""
        return self.folder / self.version.entry


def materialize(registry: ModelRegistry, version: ModelVersion) -> Path:
    """The folder holding ``version``'s files, each verified against its digest (re-copied when it is not)."""
    store = registry.workspace.blobs
    folder = registry.cache_dir(version.id)
    for stored_name, info in version.files.items():
        path = folder / stored_name
        if path.is_file() and path.stat().st_size == info["size"] \
                and store.hash_file(path) == store.normalize(info["digest"]):
            continue
        store.copy_to(info["digest"], path)
    return folder


def resolve(workspace: Workspace, ref: str | ModelRef) -> ResolvedModel:
    """Look ``ref`` up and materialize its files."""
    registry = ModelRegistry(workspace)
    version = registry.get_version(ref if isinstance(ref, ModelRef) else parse_ref(ref))
    return ResolvedModel(version, materialize(registry, version))


def _dim_name(dim, axis: int, tensor: str) -> int | str:
    if isinstance(dim, int):
        return dim
    if dim is None:
        return "batch" if axis == 0 else f"{_IDENT.sub('_', tensor)}_dim{axis}"
    name = _IDENT.sub("_", str(dim))
    return name if name and not name[0].isdigit() else f"d_{name}"


def version_spec(resolved: ResolvedModel):
    """A ModelSpec naming the resolved file, with inputs, outputs, preprocessing and task from the signature."""
    from modelyard.runtime.spec import DTYPES, parse_spec

    version = resolved.version
    signature = version.signature
    inputs = []
    for tensor in signature.inputs:
        if tensor.dtype not in DTYPES:
            raise InvalidInput(f"{version.ref}: input {tensor.name!r} has dtype {tensor.dtype}, which a ModelSpec "
                               f"cannot describe ({', '.join(DTYPES)})")
        inputs.append({"name": tensor.name, "dtype": tensor.dtype,
                       "shape": [_dim_name(d, i, tensor.name) for i, d in enumerate(tensor.shape)]})
    data = {
        "name": version.ref,
        version.format: str(resolved.path),
        "inputs": inputs,
        "outputs": [t.name for t in signature.outputs],
    }
    if signature.image_input:  # text preprocessing is the service's business, not a ModelSpec's
        data["preprocessing"] = signature.preprocessing
    if signature.task:
        data["task"] = signature.task
    return parse_spec(data, base_dir=resolved.folder)


def resolve_spec(workspace: Workspace, ref: str | ModelRef):
    """``modelyard://N@V`` / ``N@alias`` -> a ModelSpec over verified local files."""
    return version_spec(resolve(workspace, ref))


def spec_from_ref(ref: str, home: str | Path | None = None):
    """For commands that take a spec file: ``modelyard://N@V`` -> a ModelSpec, opening the workspace at ``home``
    (default ``$MODELYARD_HOME``) just for the lookup.

    Example::

        spec = spec_from_ref(arg) if is_registry_ref(arg) else load_spec(arg)
    """
    from modelyard.core.settings import Settings

    workspace = Workspace.open(Settings.load(home), create=False)
    try:
        return resolve_spec(workspace, ref)
    finally:
        workspace.close()


def clear_cache(registry: ModelRegistry) -> None:
    """Drop every materialized copy (they are re-made from the blob store on the next resolve)."""
    shutil.rmtree(registry.root / "cache", ignore_errors=True)
