"""YOLO txt: one ``.txt`` per image, one ``class cx cy w h`` line per box, normalised to 0-1 by the image's size
(a sixth number is a detector's confidence, as Ultralytics writes with ``save_conf``).

Reading takes a folder in the Ultralytics layout (``images/**`` with ``labels/**`` mirroring it, so
``images/train/a.jpg`` has ``labels/train/a.txt``) or the Darknet one (each ``.txt`` beside its image). The item id
is the image's path under ``images/`` (or under the folder). Class names come from ``data.yaml`` (``names`` as a list
or an index map), else ``classes.txt`` / ``obj.names``. An empty label file is an image with no objects, and so is
an image with no label file (Ultralytics treats both as background); a label file with no image is refused. Sizes
come from each image's header, since the coordinates mean nothing without them.

Writing produces ``images/<item>``, ``labels/<item>.txt`` (empty for an image without boxes), ``classes.txt`` and a
``data.yaml`` that Ultralytics trains on as it is.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, AnnotationSet, Box
from modelyard.data.formats.common import (
    IMAGE_SUFFIXES,
    ImageSource,
    ImageWriter,
    find_file,
    image_size,
    one_per_item,
    read_class_list,
    safe_name,
    snap,
    staged_folder,
    stem_path,
)

NAME = "yolo"
YAML_FILES = ("data.yaml", "dataset.yaml", "data.yml")
NAME_FILES = ("classes.txt", "obj.names", "names.txt")
# text files at the root of a Darknet folder that are lists or class names, not labels
NOT_LABELS = {"classes.txt", "names.txt", "labels.txt", "train.txt", "val.txt", "valid.txt", "test.txt"}


def class_names(root: Path) -> list[str] | None:
    import yaml

    for name in YAML_FILES:
        path = root / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
            except yaml.YAMLError as exc:
                raise InvalidInput(f"{name}: not valid YAML ({str(exc).splitlines()[0]})") from None
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, dict):
                try:
                    order = sorted((int(k), str(v)) for k, v in names.items())
                except (TypeError, ValueError):
                    raise InvalidInput(f"{name}: 'names' keys must be class indices 0, 1, ...") from None
                if [k for k, _ in order] != list(range(len(order))):
                    raise InvalidInput(f"{name}: 'names' must number the classes 0 to {len(order) - 1}")
                return [v for _, v in order]
            if isinstance(names, list):
                return [str(v) for v in names]
            raise InvalidInput(f"{name}: has no 'names' list of classes")
    path = find_file([root / n for n in NAME_FILES])
    return read_class_list(path) if path else None


def read(path: str | Path) -> tuple[AnnotationSet, dict[str, Path]]:
    root = Path(path)
    if root.is_file():
        raise InvalidInput(f"{root.name}: give the YOLO folder (images/, labels/ and data.yaml), not one file")
    classes = class_names(root)
    if classes is None:
        raise InvalidInput(f"{root}: a YOLO folder needs data.yaml (names: [...]) or classes.txt naming the classes "
                           "(label files hold only their indices)")
    if (root / "images").is_dir():
        image_root, label_root = root / "images", root / "labels"
    else:
        image_root = label_root = root
    images = {p.relative_to(image_root).as_posix(): p for p in sorted(image_root.rglob("*"))
              if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not _hidden(p, image_root)}
    labels = {p.relative_to(label_root).with_suffix("").as_posix(): p for p in sorted(label_root.rglob("*.txt"))
              if p.is_file() and not _hidden(p, label_root)
              and not (p.parent == root and p.name in NOT_LABELS)}
    by_stem = {str(PurePosixPath(rel).with_suffix("")): rel for rel in images}
    for stem, label_path in labels.items():
        if stem not in by_stem:
            raise InvalidInput(f"{label_path.relative_to(root).as_posix()}: a YOLO label file without its image "
                               f"(no {stem}.jpg/.png/.bmp under {image_root.relative_to(root).as_posix() or '.'})")
    items, files = [], {}
    for rel, image_path in images.items():
        width, height = image_size(image_path, rel)
        label_path = labels.get(str(PurePosixPath(rel).with_suffix("")))
        boxes = _read_labels(label_path, rel, classes, width, height) if label_path else []
        items.append(Annotated.make(rel, width, height, boxes))
        files[rel] = image_path
    return AnnotationSet("detection", tuple(classes), tuple(items)), files


def _hidden(path: Path, base: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(base).parts)


def _read_labels(path: Path, item: str, classes: list[str], width: int, height: int) -> list[Box]:
    boxes = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{item}: label file {path.name} is not text") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (5, 6):
            shape = "a segmentation polygon, not a box" if len(fields) > 6 else f"{len(fields)} numbers"
            raise InvalidInput(f"{item}: {path.name} line {number} has {shape}; expected 'class cx cy w h'")
        try:
            index = int(fields[0])
            cx, cy, w, h = (float(v) for v in fields[1:5])
            score = float(fields[5]) if len(fields) == 6 else None
        except ValueError:
            raise InvalidInput(f"{item}: {path.name} line {number} is not numbers: {line.strip()[:80]!r}") from None
        if not 0 <= index < len(classes):
            raise InvalidInput(f"{item}: unknown class index {index} on line {number} of {path.name} (the folder "
                               f"names {len(classes)} classes)")
        boxes.append(Box(snap((cx - w / 2) * width, width), snap((cy - h / 2) * height, height),
                         snap((cx + w / 2) * width, width), snap((cy + h / 2) * height, height),
                         classes[index], score))
    return boxes


def write(annotations: AnnotationSet, dest: str | Path, image_source: ImageSource = None) -> dict:
    """Write ``images/``, ``labels/``, ``classes.txt`` and ``data.yaml`` into the new or empty folder ``dest``."""
    import yaml

    if annotations.task != "detection":
        raise InvalidInput(f"YOLO txt holds boxes; a {annotations.task} set exports as csv or labelstudio")
    one_per_item(annotations.items, lambda item: stem_path(item, ".txt"), "label file")
    copy = ImageWriter(image_source)
    index = annotations.class_index()
    boxes = 0
    with staged_folder(Path(dest)) as stage:
        (stage / "classes.txt").write_text("".join(f"{c}\n" for c in annotations.classes), encoding="utf-8")
        (stage / "data.yaml").write_text(yaml.safe_dump(
            {"path": ".", "train": "images", "val": "images", "nc": len(annotations.classes),
             "names": list(annotations.classes)}, sort_keys=False, allow_unicode=True), encoding="utf-8")
        (stage / "labels").mkdir()
        for annotated in annotations.items:
            target = stage / "labels" / stem_path(annotated.item, ".txt")
            copy.make_parent(target)
            target.write_text("".join(_line(box, index, annotated.width, annotated.height)
                                      for box in annotated.boxes), encoding="utf-8")
            copy(annotated.item, stage / "images", safe_name(annotated.item))
            boxes += len(annotated.boxes)
    return {"format": NAME, "path": str(dest), "items": len(annotations.items), "images": copy.files,
            "boxes": boxes}


def _line(box: Box, index: dict[str, int], width: int, height: int) -> str:
    values = [(box.x1 + box.x2) / 2 / width, (box.y1 + box.y2) / 2 / height, box.width / width, box.height / height]
    line = f"{index[box.label]} " + " ".join(f"{v:.6f}" for v in values)
    return line + (f" {box.score!r}" if box.score is not None else "") + "\n"
