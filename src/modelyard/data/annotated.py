"""Datasets of annotated images and texts: importing COCO, Pascal VOC, YOLO, Label Studio and CSV folders as
immutable versions, reading a version back as an :class:`AnnotationSet`, and exporting one in any of those formats.

A detection set becomes an ``object-detection`` version; a single-label classification set an
``image-classification`` version (the same kind as class folders, so the image AutoML trains on it). Each manifest
entry is ``{"path", "digest", "size", "split", **Annotated.to_entry()}`` plus the image facts every image import
records (mode, format, brightness, hash); the schema is ``{"task", "classes"}``. A text set (a CSV of ``text,label``
or Label Studio text tasks) becomes a ``text-classification`` version whose entries carry the text itself
(``{"path": id, "text", "labels", "split"}``, plus ``label`` when single-label); unlabeled texts are kept (they
are what a labeling job works on). A multi-label image set (several ``;``-separated labels in a CSV cell, or
several Label Studio choices) becomes a ``multilabel-classification`` version whose entries carry ``labels``.

All or nothing: the annotations are read and checked in full first (a bad item is one error naming it), then every
image is decoded completely (a truncated or corrupt one is refused, naming it, before any row is written), then the
version row is inserted in one transaction. Boxes that cross the image's edge are clipped and counted in the
version's statistics; boxes outside the image are refused (see ``annotations.py`` for why).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.data import archive, images, splits
from modelyard.data.annotations import Annotated, AnnotationSet

# annotation task -> dataset kind
KIND_OF_TASK = {"detection": "object-detection", "classification": "image-classification",
                "multilabel": "multilabel-classification", "text": "text-classification"}
TASK_OF_KIND = {kind: task for task, kind in KIND_OF_TASK.items()}
SPLIT_NAMES = {"t": "train", "v": "validation"}
IMPORT_FORMATS = ("auto", "coco", "voc", "yolo", "labelstudio", "csv")
# what `data export` writes for each kind when no format is named
DEFAULT_EXPORT = {"tabular": "csv", "image-classification": "csv", "object-detection": "coco",
                  "multilabel-classification": "csv", "text-classification": "csv"}


def looks_annotated(path: Path) -> bool:
    """True for a folder that holds COCO, Label Studio, VOC or YOLO annotations (what ``--kind auto`` imports as
    annotations rather than as class folders). A bare CSV is not enough: class folders may carry one."""
    from modelyard.data import formats

    try:
        return formats.detect(path) in ("coco", "labelstudio", "voc", "yolo")
    except InvalidInput:
        return False


def import_annotations(store, path: Path, display: str, name: str, fmt: str, validation_fraction: float, seed: int,
                       description: str, created_by: str,
                       progress: Callable[[float, str], None] | None = None, expect_kind: str = "auto"):
    """Import the annotation folder (or archive of one, or JSON/CSV file) ``path`` as the next version of ``name``;
    ``expect_kind`` (unless ``auto``) is the kind the annotations must make. Returns the new ``DatasetVersion``."""
    from modelyard.data import formats
    from modelyard.data.stats import annotation_stats

    if fmt not in IMPORT_FORMATS:
        raise InvalidInput(f"format {fmt!r}: expected one of {', '.join(IMPORT_FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="modelyard-import-") as scratch:
        if path.is_file() and archive.is_archive(Path(display)):
            limits = archive.ArchiveLimits.from_settings(store.workspace.settings)
            path = unwrap(archive.safe_extract(path, Path(scratch) / "x", display_name=display, limits=limits))
        resolved = formats.detect(path) if fmt == "auto" else fmt
        annotations, files = formats.read(path, resolved)
        kind = KIND_OF_TASK.get(annotations.task)
        if kind is None:
            raise InvalidInput(f"{display}: a {annotations.task} set cannot be imported as a dataset")
        if expect_kind != "auto" and kind != expect_kind:
            raise InvalidInput(f"{display}: holds a {annotations.task} set, which imports as {kind}, not "
                               f"{expect_kind}")
        if not annotations.items:
            raise InvalidInput(f"{display}: the annotations list no items")
        if kind == "text-classification":
            entries, total = _text_entries(annotations)
        else:
            entries, total = _image_entries(store, annotations, files, kind, progress)
    strata = [_stratum(e) for e in entries]
    for entry, side in zip(entries, splits.stratified_split(strata, len(entries), validation_fraction, seed).tolist(),
                           strict=True):
        entry["split"] = side
    classes = list(annotations.classes)
    schema: dict = {"task": kind, "classes": classes}
    if kind == "text-classification":
        from modelyard.data.stats import text_stats

        schema["multilabel"] = any(len(e["labels"]) > 1 for e in entries)
        stats = text_stats(entries, classes)
    else:
        schema["channels"] = 1 if images.is_grayscale([e["mode"] for e in entries]) else 3
        schema["median_size"] = [int(np.median([e["height"] for e in entries])),
                                 int(np.median([e["width"] for e in entries]))]
    if kind == "image-classification":
        from modelyard.data.stats import image_stats

        schema["label"] = "label"
        stats = image_stats(entries, classes, store.blobs.read_bytes)
    elif kind == "multilabel-classification":
        from modelyard.data.stats import multilabel_stats

        schema["multilabel"] = True
        stats = multilabel_stats(entries, classes)
    elif kind == "object-detection":
        clipped = [{"path": a.item, "boxes": a.clipped} for a in annotations.items if a.clipped]
        stats = annotation_stats(entries, classes, clipped=clipped)
    notes = [f"clipped {annotations.clipped} box(es) that crossed the image's edge to the image"] \
        if annotations.clipped else []
    manifest = {"schema": "modelyard.dataset-manifest/1", "kind": kind, "entries": entries}
    return store._create_version(
        name, kind, manifest, schema=schema,
        split={"validation_fraction": validation_fraction, "seed": seed, "stratified": True,
               "counts": splits.split_counts(e["split"] for e in entries)},
        stats=stats, lineage={"parent": None, "step": None},
        source={"name": display, "format": resolved, "notes": notes},
        items=len(entries), size=total, description=description, created_by=created_by)


def _image_entries(store, annotations: AnnotationSet, files: dict[str, Path], kind: str, progress) -> tuple[list, int]:
    """Manifest entries of an image set: every image decoded first (a corrupt one stops the import before anything is
    stored), then each stored in the blob store."""
    facts_of = {}
    for index, annotated in enumerate(annotations.items):
        source = files[annotated.item]
        facts = images.inspect_image(source) if source.stat().st_size else {"error": "the file is empty"}
        if facts.get("error"):
            raise InvalidInput(f"{annotated.item}: {facts['error']}; nothing was imported (fix or remove the "
                               "image and its annotations)")
        if kind == "image-classification" and len(annotated.labels) != 1:
            raise InvalidInput(f"{annotated.item}: has no class label; an image-classification version needs one "
                               "per image (label it, or leave it out of the file)")
        facts_of[annotated.item] = facts
        if progress and index % 200 == 0:
            progress(0.5 * index / len(annotations.items), f"checked {index}/{len(annotations.items)} images")
    entries, total, seen = [], 0, set()
    for index, annotated in enumerate(annotations.items):
        blob = store.blobs.put_file(files[annotated.item])
        if blob.digest not in seen:
            seen.add(blob.digest)
            total += blob.size
        facts = {k: v for k, v in facts_of[annotated.item].items() if k not in ("width", "height")}
        entry = {"path": annotated.item, "digest": blob.digest, "size": blob.size, **facts,
                 **annotated.to_entry()}
        if kind == "image-classification":
            entry["label"] = entry.pop("labels")[0]
        elif kind == "multilabel-classification":
            entry["labels"] = list(annotated.labels)  # also when empty: an image nobody has labeled yet
        entries.append(entry)
        if progress and index % 200 == 0:
            progress(0.5 + 0.5 * index / len(annotations.items),
                     f"stored {index}/{len(annotations.items)} images")
    return entries, total


def _text_entries(annotations: AnnotationSet) -> tuple[list, int]:
    """Manifest entries of a text set: the text travels in the entry (there is no file), with its labels; a
    single-label set also gets ``label`` (the shape image-classification entries have)."""
    single = not any(len(a.labels) > 1 for a in annotations.items)
    entries, total = [], 0
    for annotated in annotations.items:
        entry = {"path": annotated.item, "text": annotated.text, "labels": list(annotated.labels)}
        if single and annotated.labels:
            entry["label"] = annotated.labels[0]
        entries.append(entry)
        total += len(annotated.text.encode("utf-8"))
    return entries, total


def unwrap(root: Path) -> Path:
    """An archive that wraps everything in one folder: that folder."""
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    while len(entries) == 1 and entries[0].is_dir():
        root = entries[0]
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    return root


def _stratum(entry: dict) -> str:
    """The class an image is split by: its label, or the class most of its boxes have (``-`` for none)."""
    if "label" in entry:
        return entry["label"]
    if entry.get("labels"):
        return entry["labels"][0]
    counts = Counter(box[4] for box in entry.get("boxes", ()))
    return counts.most_common(1)[0][0] if counts else "-"


def annotations_of(kind: str, schema: dict, manifest: dict) -> AnnotationSet:
    """A version's labels as an :class:`AnnotationSet` (entries that could not be decoded are left out)."""
    task = TASK_OF_KIND.get(kind)
    if task is None:
        raise InvalidInput(f"a {kind} dataset has no annotations")
    if task == "classification" and schema.get("multilabel"):
        task = "multilabel"
    items = []
    for entry in manifest["entries"]:
        if entry.get("error"):
            continue
        if "labels" not in entry and entry.get("label") is not None:
            entry = {**entry, "labels": [entry["label"]]}
        items.append(Annotated.from_entry(entry["path"], entry))
    return AnnotationSet(task, tuple(schema.get("classes", ())), tuple(items))


def digests_of(manifest: dict) -> dict[str, str]:
    """Each item's blob digest."""
    return {e["path"]: e["digest"] for e in manifest["entries"] if "digest" in e and not e.get("error")}


def export_annotations(version: dict, manifest: dict, read_blob: Callable[[str], bytes], dest: Path,
                       fmt: str) -> dict:
    """Write an annotated version in format ``fmt`` into the new or empty folder ``dest``: the format's files, each
    image read (verified) from the blob store one at a time, ``splits.csv`` (path, split) and ``dataset.json``.
    Returns ``modelyard.dataset-export/1``."""
    from modelyard.data import formats

    annotations = annotations_of(version["kind"], version["data_schema"], manifest)
    digests = digests_of(manifest)
    summary = formats.write(annotations, dest, fmt, lambda item: read_blob(digests[item]))
    files = sum(1 for p in Path(dest).rglob("*") if p.is_file()) + 2
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "split"])
    for entry in manifest["entries"]:
        if not entry.get("error"):
            writer.writerow([entry["path"], SPLIT_NAMES.get(entry.get("split"), entry.get("split"))])
    _write_new(Path(dest) / "splits.csv", buffer.getvalue().encode("utf-8"))
    _write_new(Path(dest) / "dataset.json", json.dumps(version, indent=2).encode("utf-8"))
    return {"schema": "modelyard.dataset-export/1", "ref": version["ref"], "path": str(dest),
            "format": fmt, "files": files, "images": summary["images"], "boxes": summary["boxes"]}


def _write_new(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)
