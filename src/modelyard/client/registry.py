"""``client.models``: the model registry over the REST API.

Registration prepares the model where the caller is (ONNX/IR as they are; PyTorch specs exported, scikit-learn
and LightGBM converted to ONNX), uploads the files as blobs and registers them; the server reads the signature
from the uploaded artifact itself.

Example::

    version = client.models.register("model.onnx", "resnet", metrics={"top1": 0.71}, tags={"team": "vision"})
    client.models.alias("resnet@1", "production")
    client.models.version("resnet@production")["signature"]
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote


def _split(ref: str) -> tuple[str, str]:
    from modelyard.registry.refs import parse_ref

    parsed = parse_ref(ref)
    selector = str(parsed.version) if parsed.version is not None else (parsed.alias or "latest")
    return parsed.name, selector


class Models:
    def __init__(self, client):
        self._c = client

    def register(
        self,
        source: str | Path | Any | None,
        name: str,
        *,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        lineage: dict | None = None,
        description: str = "",
        from_job: str | None = None,
        preprocessing: dict | None = None,
        task: dict | None = None,
        trust_pickle: bool = False,
        n_features: int | None = None,
        hf_task: str | None = None,
    ) -> dict:
        """Register a new version of ``name``.

        Args:
            source: a path (``.onnx``, ``.xml``, ModelSpec ``.yaml``/``.json``, LightGBM ``.txt``, trusted
                ``.pkl``/``.joblib``, an MLflow model folder, a Hugging Face folder with ``hf_task``), a fitted
                scikit-learn/LightGBM estimator, or None with ``from_job`` to register the model file that job
                produced.
            name: the model name.
            metrics, tags, lineage, description: recorded on the version.
            from_job: a job id, recorded as lineage.
            preprocessing: image preprocessing (overrides a spec's).
            task: task (overrides a spec's).
            trust_pickle: allow loading a pickled estimator (runs code from the file).
            n_features: for an estimator whose feature count cannot be read from it.
            hf_task: for a Hugging Face folder: ``text-generation`` (a causal language model, stored as its own
                files as a ``foundation`` model; a ``.gguf`` file needs no task), ``foundation`` (any model kept as
                its files, an encoder for ``tune --stage classify`` say), ``text-classification``,
                ``image-classification`` or ``feature-extraction``; those three are converted to ONNX by the migration
                passes and registered only when the compare engine passes them against the PyTorch model.
        """
        from modelyard.registry.refs import check_name

        check_name(name)
        body: dict[str, Any] = {"metrics": metrics or {}, "tags": tags or {}, "lineage": dict(lineage or {}),
                                "description": description, "from_job": from_job}
        if source is None:
            if not from_job:
                from modelyard.core.errors import InvalidInput

                raise InvalidInput("give a model file, a spec or an estimator (or --from-job with a job's output)")
            body.update(preprocessing=preprocessing, task=task)
            return self._c.request("POST", f"/api/v1/models/{quote(name)}/versions", json=body).json()
        from modelyard.registry.formats import prepare_estimator

        with tempfile.TemporaryDirectory(prefix="modelyard-register-") as tmp:
            if isinstance(source, str | Path):
                prepared = _prepare_path(Path(source), Path(tmp), trust_pickle, hf_task, (tags or {}).get("license"))
            else:
                prepared = prepare_estimator(source, Path(tmp), n_features)
            files = {stored: self._c.blobs.put(path)["digest"] for stored, path in prepared.files.items()}
        foundation = (prepared.metadata or {}).get("foundation")
        if foundation:  # an L0: its kind and license are tags, so `models list` and the console show them
            body["tags"] = {"kind": "foundation", "license": foundation["license"], **body["tags"]}
        if prepared.notes or prepared.source:
            body["lineage"].setdefault("source", {"path": prepared.source, "format": prepared.source_format,
                                                  "notes": prepared.notes, **(prepared.metadata or {})})
        body.update(files=files, entry=prepared.entry, source_format=prepared.source_format,
                    preprocessing=preprocessing if preprocessing is not None else prepared.preprocessing,
                    task=task if task is not None else prepared.task)
        return self._c.request("POST", f"/api/v1/models/{quote(name)}/versions", json=body).json()

    def list(self) -> dict:
        return self._c.get_json("/api/v1/models")

    def get(self, name: str) -> dict:
        return self._c.get_json(f"/api/v1/models/{quote(name)}")

    def version(self, ref: str) -> dict:
        """``N``, ``N@V``, ``N@alias`` (or ``modelyard://...``): the version with its card."""
        name, selector = _split(ref)
        return self._c.get_json(f"/api/v1/models/{quote(name)}/versions/{quote(selector)}")

    def card(self, ref: str) -> str:
        name, selector = _split(ref)
        return self._c.request("GET", f"/api/v1/models/{quote(name)}/versions/{quote(selector)}/card").text

    def alias(self, ref: str, alias: str) -> dict:
        """Point ``alias`` at the version ``ref`` names (``N@V``; an alias ref is resolved first)."""
        version = self.version(ref)
        return self._c.request("PUT", f"/api/v1/models/{quote(version['name'])}/aliases/{quote(alias)}",
                               json={"version": version["version"]}).json()

    def delete_alias(self, name: str, alias: str) -> dict:
        return self._c.request("DELETE", f"/api/v1/models/{quote(name)}/aliases/{quote(alias)}").json()

    def delete(self, ref: str) -> dict:
        """``N@V`` deletes one version; ``N`` alone the whole model."""
        from modelyard.registry.refs import parse_ref

        parsed = parse_ref(ref)
        if parsed.version is None and parsed.alias is None and "@" not in ref:
            return self._c.request("DELETE", f"/api/v1/models/{quote(parsed.name)}").json()
        version = self.version(ref)
        return self._c.request("DELETE", f"/api/v1/models/{quote(parsed.name)}/versions/{version['version']}").json()

    def download(self, ref: str, dest: str | Path) -> Path:
        """Download a version's files (verified) into ``dest``; returns the entry file's path."""
        from modelyard.registry.formats import check_stored_name

        version = self.version(ref)
        folder = Path(dest)
        for stored, info in version["files"].items():
            check_stored_name(stored)
            target = folder / stored
            target.parent.mkdir(parents=True, exist_ok=True)
            self._c.blobs.get(info["digest"], target)
        return folder / version["entry"]

    def export(self, ref: str, dest: str | Path, fmt: str = "files") -> dict:
        """Write a version into the folder ``dest`` (which must not exist or be empty): ``files`` as stored, or
        ``mlflow`` as an MLflow model directory (onnx flavour, signature kept) that ``mlflow.pyfunc`` loads."""
        from modelyard.core.errors import InvalidInput

        if fmt not in ("files", "mlflow"):
            raise InvalidInput(f"unknown export format {fmt!r}: use files or mlflow")
        folder = Path(dest)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise InvalidInput(f"{folder} exists and is not an empty folder")
        version = self.version(ref)
        if fmt == "files":
            self.download(ref, folder)
        else:
            from modelyard.registry.mlflow_model import write_mlflow_model

            if version["format"] != "onnx":
                raise InvalidInput(f"{version['ref']} is {version['format']}: only ONNX versions export as MLflow "
                                   "models")
            with tempfile.TemporaryDirectory(prefix="modelyard-export-") as tmp:
                entry = self.download(ref, Path(tmp))
                write_mlflow_model(version, entry, folder)
        return {"schema": "modelyard.model-export/1", "ref": version["ref"], "format": fmt, "path": str(folder)}


def _prepare_path(path: Path, workdir: Path, trust_pickle: bool, hf_task: str | None, license: str | None = None):
    """A file or folder ready to upload; a Hugging Face folder goes through the migration passes and compare, a
    language model (``text-generation`` or a ``.gguf``) is stored as its own files."""
    from modelyard.core.errors import InvalidInput
    from modelyard.registry.formats import prepare
    from modelyard.registry.foundation import FOUNDATION_TASKS, is_gguf, prepare_foundation
    from modelyard.registry.mlflow_model import is_mlflow_model, prepare_mlflow

    folder = path.expanduser()
    if hf_task in FOUNDATION_TASKS or is_gguf(folder):
        return prepare_foundation(folder, license)
    if is_mlflow_model(folder):
        return prepare_mlflow(folder.resolve(), workdir, trust_pickle)
    if folder.is_dir() and (folder / "config.json").is_file():
        from modelyard.migrate.model.hf_import import is_hf_folder, prepare_hf

        if not is_hf_folder(folder):
            raise InvalidInput(f"{folder.name} has a config.json but no .safetensors weights; Modelyard loads only "
                               "local safetensors and never downloads")
        if not hf_task:
            raise InvalidInput(f"{folder.name} is a Hugging Face folder: say what it does with --task "
                               "text-classification|image-classification|feature-extraction")
        return prepare_hf(folder, workdir, hf_task)
    if hf_task:
        raise InvalidInput("--task applies to Hugging Face folders only")
    return prepare(path, workdir, trust_pickle=trust_pickle)
