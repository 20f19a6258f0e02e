"""Pascal VOC XML: one ``<annotation>`` file per image with ``<filename>``, ``<size>`` and ``<object>``s of
``<name>`` and ``<bndbox>`` ``xmin, ymin, xmax, ymax`` in pixels.

Reading takes a folder: the XML files under ``Annotations/`` (or, without one, every ``*.xml`` in the folder), the
images under ``JPEGImages/`` (or beside each XML). An XML at ``Annotations/sub/x.xml`` describes
``JPEGImages/sub/<filename>``, and that relative path is the item id. Coordinates are read as written (LabelImg
and CVAT write pixel edges, CVAT with decimals); the class list is ``labels.txt`` (or CVAT's ``labelmap.txt``)
when present, else the names used. A ``<score>`` inside an object (a detector's result; not standard VOC) is kept.

Writing produces ``Annotations/<item>.xml``, ``JPEGImages/<item>`` and ``labels.txt``, one file at a time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, AnnotationSet, Box
from modelyard.data.formats.common import (
    IMAGE_SUFFIXES,
    ImageSource,
    ImageWriter,
    check_size,
    class_order,
    find_file,
    image_size,
    number,
    one_per_item,
    read_class_list,
    safe_item,
    staged_folder,
    stem_path,
)

NAME = "voc"
CLASS_FILES = ("labels.txt", "labelmap.txt")


def xml_files(root: Path) -> list[Path]:
    base = root / "Annotations"
    return sorted(p for p in (base.rglob("*.xml") if base.is_dir() else root.glob("*.xml")) if p.is_file())


def read(path: str | Path) -> tuple[AnnotationSet, dict[str, Path]]:
    root = Path(path)
    if root.is_file():
        raise InvalidInput(f"{root.name}: give the VOC folder (Annotations/ + JPEGImages/), not one file")
    xmls = xml_files(root)
    if not xmls and not (root / "Annotations").is_dir():
        raise InvalidInput(f"{root}: no VOC XML files (Annotations/*.xml) found")
    xml_root = root / "Annotations" if (root / "Annotations").is_dir() else root
    image_root = root / "JPEGImages" if (root / "JPEGImages").is_dir() else None
    declared_file = find_file([root / name for name in CLASS_FILES])
    declared = read_class_list(declared_file) if declared_file else None
    items, files, used = [], {}, []
    for xml_path in xmls:
        rel_dir = xml_path.parent.relative_to(xml_root)
        annotated, found = _read_one(xml_path, rel_dir, image_root)
        items.append(annotated)
        files[annotated.item] = found
        used.extend(box.label for box in annotated.boxes)
    return AnnotationSet("detection", class_order(declared, used), tuple(items)), files


def _read_one(xml_path: Path, rel_dir: Path, image_root: Path | None) -> tuple[Annotated, Path]:
    name = xml_path.name
    try:
        document = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise InvalidInput(f"{name}: not well-formed XML ({exc})") from None
    if document.tag != "annotation":
        raise InvalidInput(f"{name}: not a VOC annotation (root element <{document.tag}>)")
    filename = (document.findtext("filename") or "").strip()
    folder = (image_root / rel_dir) if image_root is not None else xml_path.parent
    if filename:
        found = folder / filename
    else:  # some tools leave <filename> out: the image is the XML's namesake
        found = find_file([folder / (xml_path.stem + s) for s in IMAGE_SUFFIXES + tuple(x.upper() for x in
                                                                                          IMAGE_SUFFIXES)])
        filename = found.name if found else xml_path.stem + ".jpg"
        found = found or folder / filename
    item = safe_item((rel_dir / filename).as_posix(), name).as_posix()
    if not found.is_file():
        raise InvalidInput(f"{item}: {name} describes this image but no such file exists ({found})")
    claimed = (_number(document.findtext("size/width"), item, "width"),
               _number(document.findtext("size/height"), item, "height"))
    width, height = check_size(item, (int(claimed[0]), int(claimed[1])), image_size(found, item), name)
    boxes = []
    for obj in document.findall("object"):
        label = (obj.findtext("name") or "").strip()
        if not label:
            raise InvalidInput(f"{item}: an <object> in {name} has no <name>")
        box = obj.find("bndbox")
        if box is None:
            raise InvalidInput(f"{item}: object {label!r} in {name} has no <bndbox>")
        x1, y1, x2, y2 = (_number(box.findtext(tag), item, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        score = obj.findtext("score")
        boxes.append(Box(x1, y1, x2, y2, label, _number(score, item, "score") if score is not None else None))
    return Annotated.make(item, width, height, boxes), found


def _number(text: str | None, item: str, tag: str) -> float:
    if text is None or not text.strip():
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{item}: <{tag}> {text.strip()[:40]!r} is not a number") from None


def write(annotations: AnnotationSet, dest: str | Path, image_source: ImageSource = None) -> dict:
    """Write ``Annotations/``, ``JPEGImages/`` and ``labels.txt`` into the new or empty folder ``dest``."""
    if annotations.task != "detection":
        raise InvalidInput(f"Pascal VOC holds boxes; a {annotations.task} set exports as csv or labelstudio")
    one_per_item(annotations.items, lambda item: stem_path(item, ".xml"), "annotation file")
    copy = ImageWriter(image_source)
    boxes = 0
    with staged_folder(Path(dest)) as stage:
        (stage / "Annotations").mkdir()
        (stage / "labels.txt").write_text("".join(f"{c}\n" for c in annotations.classes), encoding="utf-8")
        for annotated in annotations.items:
            pure = safe_item(annotated.item)
            target = stage / "Annotations" / stem_path(annotated.item, ".xml")
            copy.make_parent(target)
            target.write_text(_document(annotated, pure.name, pure.parent.as_posix()), encoding="utf-8")
            copy(annotated.item, stage / "JPEGImages", str(pure))
            boxes += len(annotated.boxes)
    return {"format": NAME, "path": str(dest), "items": len(annotations.items), "images": copy.files,
            "boxes": boxes}


def _document(annotated: Annotated, filename: str, folder: str) -> str:
    objects = []
    for box in annotated.boxes:
        score = f"\n    <score>{box.score!r}</score>" if box.score is not None else ""
        objects.append(
            f"  <object>\n    <name>{escape(box.label)}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>0</difficult>{score}\n    <bndbox>\n"
            f"      <xmin>{number(box.x1)}</xmin>\n      <ymin>{number(box.y1)}</ymin>\n"
            f"      <xmax>{number(box.x2)}</xmax>\n      <ymax>{number(box.y2)}</ymax>\n    </bndbox>\n  </object>\n")
    return (f"<annotation>\n  <folder>{escape('JPEGImages' if folder == '.' else folder)}</folder>\n"
            f"  <filename>{escape(filename)}</filename>\n  <size>\n    <width>{annotated.width}</width>\n"
            f"    <height>{annotated.height}</height>\n    <depth>3</depth>\n  </size>\n  <segmented>0</segmented>\n"
            + "".join(objects) + "</annotation>\n")
