"""Export a dataset version to a plain folder: the table (CSV or Parquet) or the images in class folders, a split
column/file, and ``dataset.json`` with the version's metadata. Every file is written from verified blob bytes.

The blob reader is a parameter so the SDK exports the same layout over HTTP as the library does on local files.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput

SPLIT_NAMES = {"t": "train", "v": "validation"}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def export_version(version: dict, manifest: dict, read_blob: Callable[[str], bytes], dest: Path,
                   fmt: str | None = None) -> dict:
    """Write ``version`` (its ``to_dict()``) into the empty or new folder ``dest``.

    Args:
        version: the version's ``to_dict()``.
        manifest: its manifest.
        read_blob: ``digest -> bytes`` (verified).
        dest: output folder; must not hold files already.
        fmt: ``csv`` (default) or ``parquet`` for tables; ``csv`` (class folders + labels.csv, the default) or
            ``labelstudio`` for image classification; ``coco`` (default), ``voc``, ``yolo`` or ``labelstudio`` for
            object detection; ``csv`` (default) or ``labelstudio`` for multi-label and text classification (see
            ``modelyard.data.formats``).

    Returns:
        ``{"schema": "modelyard.dataset-export/1", "ref", "path", "files"}``.
    """
    from modelyard.data.annotated import DEFAULT_EXPORT, export_annotations

    fmt = fmt or DEFAULT_EXPORT.get(manifest["kind"], "csv")
    if manifest["kind"] in ("object-detection", "multilabel-classification", "text-classification") or (
            manifest["kind"] == "image-classification" and fmt != "csv"):
        return export_annotations(version, manifest, read_blob, Path(dest), fmt)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"export destination {dest} exists and is not an empty folder")
    if fmt not in ("csv", "parquet"):
        raise InvalidInput(f"format {fmt!r}: expected csv or parquet")
    dest.mkdir(parents=True, exist_ok=True)
    files = 0
    if manifest["kind"] == "tabular":
        from modelyard.data.tabular import frame_from_parquet

        frame = frame_from_parquet(read_blob(manifest["table"]["digest"]))
        column = "_split" if "_split" not in frame.columns else "_modelyard_split"
        frame[column] = [SPLIT_NAMES[s] for s in manifest["split"]]
        if fmt == "csv":
            _write_atomic(dest / "data.csv", frame.to_csv(index=False).encode("utf-8"))
        else:
            from modelyard.data.tabular import frame_to_parquet

            _write_atomic(dest / "data.parquet", frame_to_parquet(frame))
        files += 1
    else:
        rows = []
        for entry in manifest["entries"]:
            rel = PurePosixPath(entry["path"])
            if rel.is_absolute() or ".." in rel.parts:  # manifests are ours, but never trust a path blindly
                raise InvalidInput(f"manifest path {entry['path']!r} is not a safe relative path")
            _write_atomic(dest.joinpath(*rel.parts), read_blob(entry["digest"]))
            rows.append([entry["path"], entry["label"], SPLIT_NAMES[entry["split"]], entry.get("error") or ""])
            files += 1
        lines = [["path", "label", "split", "error"], *rows]
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(lines)
        _write_atomic(dest / "labels.csv", buffer.getvalue().encode("utf-8"))
        files += 1
    _write_atomic(dest / "dataset.json", json.dumps(version, indent=2).encode("utf-8"))
    return {"schema": "modelyard.dataset-export/1", "ref": version["ref"], "path": str(dest), "files": files + 1}
