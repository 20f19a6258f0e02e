"""``client.data``: datasets over the REST API (or in-process).

Example::

    client = modelyard.Client()
    version = client.data.import_path("iris.csv", name="iris")      # a folder of class folders works too
    print(version["ref"], version["stats"]["per_class"])
    client.data.prep("iris@1", [{"op": "impute", "strategy": "median"}])
    client.data.export("iris@2", "out/iris")
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from urllib.parse import quote

from modelyard.core.errors import InvalidInput


def _split_ref(ref: str) -> tuple[str, str]:
    from modelyard.data.refs import parse_ref

    name, version = parse_ref(ref)
    return quote(name, safe=""), "latest" if version is None else str(version)


def _folder_files(folder: Path) -> dict[str, Path]:
    """Every file of a folder tree by its relative posix name, hidden files and folders left out."""
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)}


class Datasets:
    def __init__(self, client):
        self._c = client

    def import_path(self, path: str | Path, name: str, kind: str = "auto", label: str | None = None,
                    task: str = "auto", validation_fraction: float = 0.2, seed: int = 0,
                    description: str = "", fmt: str | None = None) -> dict:
        """Import a table, an image folder, an archive of one, a CSV of path,label, or an annotation folder (COCO,
        Pascal VOC, YOLO, Label Studio; ``fmt`` names the format, else ``kind=auto`` detects the first three and
        Label Studio) as the next version of ``name``. Returns the version (``modelyard.dataset-version/1``)."""
        path = Path(path)
        if not path.exists():
            raise InvalidInput(f"no such file or folder: {path}")
        body = {"kind": kind, "label": label, "task": task, "format": fmt,
                "validation_fraction": validation_fraction, "seed": seed, "description": description}
        if path.is_dir():
            if kind == "tabular":
                raise InvalidInput(f"{path}: a folder cannot be imported as a table")
            files = _folder_files(path)
            if not files:
                raise InvalidInput(f"{path}: the folder is empty")
            return self.import_files(files, name, source_name=path.resolve().name or "images", **body)
        with tempfile.TemporaryDirectory(prefix="modelyard-upload-") as scratch:
            if path.suffix.lower() == ".csv" and kind != "tabular" and fmt is None and self._is_label_csv(path):
                # a CSV of path,label names local files: send them along, packed with the CSV
                upload = self._pack_label_csv(path, Path(scratch))
            else:
                upload = path
            if upload.is_file() and upload.stat().st_size == 0:
                raise InvalidInput(f"{path.name}: the file is empty")
            return self.import_files({upload.name: upload}, name, **body)

    def import_files(self, files: dict[str, str | Path], name: str, on_progress=None, **options) -> dict:
        """Upload ``relative name -> local path`` file by file (skipping what the server holds already, so a
        rerun resumes) and import them as the next version of ``name``: a folder's tree or one table file.
        ``options`` are those of ``import_path`` plus ``source_name``."""
        digests = self._c.blobs.put_files(files, on_progress=on_progress)
        return self._c.request("POST", "/api/v1/datasets/import-files",
                               json={"name": name, "files": digests, **options}).json()

    @staticmethod
    def _is_label_csv(path: Path) -> bool:
        from modelyard.data.datasets import detect_kind

        return detect_kind(path) == "image-classification"

    @staticmethod
    def _pack_label_csv(csv_path: Path, scratch: Path) -> Path:
        from modelyard.data.images import read_label_csv

        found, _ = read_label_csv(csv_path)  # validates every path (no escapes) before anything is sent
        root = csv_path.parent.resolve()
        dest = scratch / f"{csv_path.stem}.zip"
        with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as bundle:
            written: set[str] = set()
            for item in found:
                member = f"{item.label}/{item.source.relative_to(root).as_posix().replace('/', '__')}"
                if member not in written:
                    written.add(member)
                    bundle.write(item.source, member)
        return dest

    def list(self) -> dict:
        return self._c.get_json("/api/v1/datasets")

    def versions(self, name: str) -> dict:
        return self._c.get_json(f"/api/v1/datasets/{quote(name, safe='')}")

    def get(self, ref: str) -> dict:
        name, version = _split_ref(ref)
        return self._c.get_json(f"/api/v1/datasets/{name}/versions/{version}")

    def stats(self, ref: str) -> dict:
        name, version = _split_ref(ref)
        return self._c.get_json(f"/api/v1/datasets/{name}/versions/{version}/stats")

    def manifest(self, ref: str) -> dict:
        name, version = _split_ref(ref)
        return self._c.get_json(f"/api/v1/datasets/{name}/versions/{version}/manifest")

    def duplicates(self, ref: str, near: bool = True) -> dict:
        """What ``dedupe`` (with ``near``: also near-duplicates) would remove from an image version, without
        removing anything. Returns ``modelyard.dedupe-plan/1``."""
        name, version = _split_ref(ref)
        return self._c.get_json(f"/api/v1/datasets/{name}/versions/{version}/duplicates",
                                params={"near": "true" if near else "false"})

    def delete(self, ref: str) -> dict:
        """``N@V`` deletes one version, ``N`` the dataset with every version (rows only; ``blobs.gc`` frees the
        files). Returns ``modelyard.dataset-deleted/1``."""
        from modelyard.data.refs import parse_ref

        name, version = parse_ref(ref)
        path = f"/api/v1/datasets/{quote(name, safe='')}"
        return self._c.request("DELETE", path if version is None else f"{path}/versions/{version}").json()

    def prep(self, ref: str, steps: list[dict]) -> dict:
        """Apply preprocessing steps; each makes a new version. Returns ``modelyard.dataset-steps/1``."""
        name, version = _split_ref(ref)
        return self._c.request("POST", f"/api/v1/datasets/{name}/versions/{version}/steps",
                               json={"steps": steps}).json()

    def export(self, ref: str, dest: str | Path, fmt: str | None = None) -> dict:
        """Write the version into the new or empty folder ``dest`` (see ``modelyard.data.export``): ``fmt`` is
        ``csv``/``parquet`` for tables, ``csv`` (class folders) or ``labelstudio`` for image classification,
        ``coco`` (default), ``voc``, ``yolo`` or ``labelstudio`` for object detection. Images are fetched and
        written one at a time."""
        from modelyard.data.export import export_version

        version = self.get(ref)
        manifest = self.manifest(version["ref"])

        def read_blob(digest: str) -> bytes:
            if self._c.in_process:
                return self._c._workspace.blobs.read_bytes(digest)
            digest = digest if digest.startswith("sha256:") else "sha256:" + digest
            data = self._c.request("GET", f"/api/v1/blobs/{digest}").content
            import hashlib

            if hashlib.sha256(data).hexdigest() != digest.removeprefix("sha256:"):
                raise InvalidInput(f"downloaded blob {digest} does not match its hash")
            return data

        return export_version(version, manifest, read_blob, Path(dest), fmt=fmt)
