"""Annotation formats, both ways: COCO instances JSON, Pascal VOC XML, YOLO txt, Label Studio JSON and CSV.

Each format is one module with ``read(path) -> (AnnotationSet, files)`` (``files`` maps each item id to its image
file; texts have none) and ``write(annotations, dest, image_source) -> summary``. Readers check everything before
returning (a bad item anywhere is one :class:`InvalidInput` naming it, and nothing is returned); writers stream
items to disk one at a time into a hidden folder that is renamed into place only when complete.

Example::

    from modelyard.data import formats

    annotations, files = formats.read("voc_export/")             # format detected
    formats.write(annotations, "out/", "yolo", image_source=files)
"""

from __future__ import annotations

import importlib
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import AnnotationSet
from modelyard.data.formats.common import ImageSource, peek

# name -> module; the order is the order auto-detection tries them in
FORMATS: dict[str, str] = {
    "coco": "modelyard.data.formats.coco",
    "labelstudio": "modelyard.data.formats.labelstudio",
    "voc": "modelyard.data.formats.voc",
    "csv": "modelyard.data.formats.csvlabels",
    "yolo": "modelyard.data.formats.yolo",
}
# what each format can hold
TASKS = {"coco": ("detection",), "voc": ("detection",), "yolo": ("detection",),
         "labelstudio": ("detection", "classification", "multilabel", "text"),
         "csv": ("classification", "multilabel", "text")}


def module(fmt: str):
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown annotation format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt])


def detect(path: str | Path) -> str:
    """The format of a file or folder, judged by names and first characters (a large JSON is not parsed).

    Raises:
        InvalidInput: nothing recognisable, naming what was looked for.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"no such file or folder: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".json":
            return "coco" if peek(path) == "{" else "labelstudio"
        if suffix == ".csv":
            return "csv"
        raise InvalidInput(f"{path.name}: not an annotation file (a COCO or Label Studio .json, or a .csv); give the "
                           "folder for VOC or YOLO")
    from modelyard.data.formats import coco, csvlabels, labelstudio, voc, yolo

    if coco.json_files(path):
        return "coco"
    if labelstudio.json_files(path):
        return "labelstudio"
    if voc.xml_files(path) or (path / "Annotations").is_dir():
        return "voc"
    if any(p.name != csvlabels.SPLITS_FILE for p in csvlabels.csv_files(path)):
        return "csv"
    # a YOLO folder must name its classes (data.yaml or classes.txt) to be read at all; that file is the sign, not
    # loose .txt files (a README.txt beside class folders is not a label)
    if any((path / n).is_file() for n in yolo.YAML_FILES + yolo.NAME_FILES):
        return "yolo"
    raise InvalidInput(f"{path}: cannot tell the annotation format (looked for a COCO or Label Studio .json, "
                       "Annotations/*.xml, a .csv, data.yaml or classes.txt); give --format")


def read(path: str | Path, fmt: str = "auto") -> tuple[AnnotationSet, dict[str, Path]]:
    """Read annotations and find their images; ``fmt`` is ``auto`` (default) or one of :data:`FORMATS`."""
    resolved = detect(path) if fmt == "auto" else fmt
    return module(resolved).read(Path(path))


def write(annotations: AnnotationSet, dest: str | Path, fmt: str, image_source: ImageSource = None) -> dict:
    """Write ``annotations`` in format ``fmt`` into the new or empty folder ``dest``.

    Args:
        annotations: the set to write.
        dest: output folder; must not hold files yet. Nothing appears there unless the whole export succeeds.
        fmt: one of :data:`FORMATS`.
        image_source: each item's image, as ``{item: Path}`` or ``callable(item) -> bytes``; None writes labels
            only.

    Returns:
        ``{"format", "path", "items", "images", "boxes"}``.
    """
    writer = module(fmt)
    if annotations.task not in TASKS[fmt]:
        raise InvalidInput(f"{fmt} cannot hold a {annotations.task} set; use one of "
                           + ", ".join(f for f, tasks in TASKS.items() if annotations.task in tasks))
    return writer.write(annotations, Path(dest), image_source)
