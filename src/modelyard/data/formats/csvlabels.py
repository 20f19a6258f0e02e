"""CSV for classification: images as ``file,label`` (paths relative to the CSV) and texts as ``id,text,label``.

Several labels in one cell are separated by ``;`` and make the set multi-label (a header of ``labels`` says so
even when every row has one). A row with an empty label is an item nobody has labeled yet. Headers are optional for
images (two columns are then file and label) and required for texts (a ``text`` column is what tells them apart).
The class order comes from ``classes.txt`` beside the CSV when present, else the labels used, sorted.

Writing produces ``labels.csv`` with the images beside it, or ``texts.csv``, plus ``classes.txt``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, AnnotationSet
from modelyard.data.formats.common import (
    ImageSource,
    ImageWriter,
    class_order,
    image_size,
    read_class_list,
    safe_item,
    safe_name,
    staged_folder,
)

NAME = "csv"
SEPARATOR = ";"
FILE_COLUMNS = ("file", "path", "image", "filename")
LABEL_COLUMNS = ("label", "labels", "class")
CLASSES_FILE = "classes.txt"


SPLITS_FILE = "splits.csv"  # what a dataset export writes beside the labels: not a label file


def csv_files(path: Path) -> list[Path]:
    found = [p for p in sorted(path.glob("*.csv")) if p.is_file()]
    return [p for p in found if p.name != SPLITS_FILE] if len(found) > 1 else found


def read(path: str | Path) -> tuple[AnnotationSet, dict[str, Path]]:
    path = Path(path)
    if path.is_dir():
        found = csv_files(path)
        if len(found) != 1:
            raise InvalidInput(f"{path}: expected one CSV of file,label or text,label, found {len(found)}")
        path = found[0]
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:  # newline="": a quoted cell keeps its \r
            text = handle.read()
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name}: not UTF-8 text") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise InvalidInput(f"{path.name}: not a readable CSV ({exc})") from None
    if not rows:
        raise InvalidInput(f"{path.name}: the file is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    declared_path = path.parent / CLASSES_FILE
    declared = read_class_list(declared_path) if declared_path.is_file() else None
    if "text" in header:
        return _read_texts(path.name, header, rows[1:], declared)
    has_header = bool(header) and header[0] in FILE_COLUMNS
    plural = has_header and len(header) > 1 and header[1] == "labels"
    items, files, used = [], {}, []
    multi = plural
    base = path.parent.resolve()
    for number, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        if len(row) != 2:
            raise InvalidInput(f"{path.name} row {number}: expected 2 columns (file,label), got {len(row)}")
        item = safe_item(row[0].strip(), f"{path.name} row {number}").as_posix()
        image = (base / item).resolve()
        if not image.is_relative_to(base):
            raise InvalidInput(f"{item}: the path leaves {base} (through a link)")
        if not image.is_file():
            raise InvalidInput(f"{item}: {path.name} row {number} names this image but no such file exists")
        labels = _labels(row[1])
        multi = multi or len(labels) > 1
        width, height = image_size(image, item)
        items.append(Annotated.make(item, width, height, labels=labels))
        files[item] = image
        used.extend(labels)
    task = "multilabel" if multi else "classification"
    return AnnotationSet(task, class_order(declared, used), tuple(items)), files


def _read_texts(name: str, header: list[str], rows: list[list[str]], declared: list[str] | None):
    label_column = next((c for c in LABEL_COLUMNS if c in header), None)
    if label_column is None:
        raise InvalidInput(f"{name}: a text CSV needs a label (or labels) column beside 'text'")
    text_at, label_at = header.index("text"), header.index(label_column)
    id_at = header.index("id") if "id" in header else None
    items, used = [], []
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise InvalidInput(f"{name} row {number}: expected {len(header)} columns, got {len(row)}")
        item = row[id_at].strip() if id_at is not None else str(number - 1)
        if not item:
            raise InvalidInput(f"{name} row {number}: empty id")
        labels = _labels(row[label_at])
        items.append(Annotated.make(item, labels=labels, text=row[text_at]))
        used.extend(labels)
    return AnnotationSet("text", class_order(declared, used), tuple(items)), {}


def _labels(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(SEPARATOR) if part.strip()]


def write(annotations: AnnotationSet, dest: str | Path, image_source: ImageSource = None) -> dict:
    """Write ``labels.csv`` (+ images) or ``texts.csv``, and ``classes.txt``, into the new or empty folder ``dest``."""
    if annotations.task == "detection":
        raise InvalidInput("a CSV holds class labels, not boxes; export a detection set as coco, voc, yolo or "
                           "labelstudio")
    odd = [c for c in annotations.classes if SEPARATOR in c or c != c.strip() or not c]
    if odd:
        raise InvalidInput(f"class {odd[0]!r} cannot be written to a CSV label cell ({SEPARATOR!r} separates labels, "
                           "and names cannot start or end with spaces)")
    copy = ImageWriter(image_source)
    plural = annotations.task in ("multilabel", "text") and any(len(a.labels) > 1 for a in annotations.items)
    plural = plural or annotations.task == "multilabel"
    label_header = "labels" if plural else "label"
    with staged_folder(Path(dest)) as stage:
        (stage / CLASSES_FILE).write_text("".join(f"{c}\n" for c in annotations.classes), encoding="utf-8")
        text = annotations.task == "text"
        with open(stage / ("texts.csv" if text else "labels.csv"), "w", encoding="utf-8", newline="") as out:
            # a text may hold a lone \r, which the minimal quoting of a "\n"-terminated CSV leaves bare
            writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL if text else csv.QUOTE_MINIMAL)
            writer.writerow(["id", "text", label_header] if text else ["file", label_header])
            for annotated in annotations.items:
                cell = SEPARATOR.join(annotated.labels)
                if text:
                    writer.writerow([annotated.item, annotated.text, cell])
                else:
                    item = safe_name(annotated.item)
                    writer.writerow([item, cell])
                    copy(annotated.item, stage, item)
    return {"format": NAME, "path": str(dest), "items": len(annotations.items), "images": copy.files, "boxes": 0}
