"""COCO instances JSON: ``{"images": [{id, file_name, width, height}], "annotations": [{id, image_id,
category_id, bbox: [x, y, w, h] px, area, iscrowd}], "categories": [{id, name}]}``.

Reading takes a JSON file, or a folder holding ``*.json`` (at its root or in ``annotations/``; several files, such
as ``instances_train2017.json`` and ``instances_val2017.json``, are merged, and when ``instances_*.json`` files are
there the release's ``captions_*`` and ``person_keypoints_*`` files beside them are not read). Each image's
``file_name`` is the item id and is looked up in the JSON's folder, its ``images/`` folder, the root, the root's
``images/`` and the folder named after the file (``train2017/``). Classes are the categories in id order. A
``score`` on an annotation (a detector's result) is kept as the box's score.

Writing produces ``annotations.json`` and ``images/<item>``; the JSON is written piece by piece (categories, then
one image record at a time, then one annotation at a time), so an export of any size needs memory for one item.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, AnnotationSet, Box
from modelyard.data.formats.common import (
    ImageSource,
    ImageWriter,
    check_size,
    find_file,
    image_size,
    load_json,
    number,
    peek,
    safe_item,
    safe_name,
    staged_folder,
)

NAME = "coco"
ANNOTATION_FILE = "annotations.json"
SEPARATORS = ("\n  ", ",\n  ")  # before the first record of a list, before every later one


def json_files(path: Path) -> list[Path]:
    """The COCO JSON files of a folder (root, then ``annotations/``), told apart from Label Studio's lists by
    their first character, and from the ``dataset.json`` a Modelyard export writes beside them by its schema tag."""
    candidates = sorted(path.glob("*.json")) + sorted((path / "annotations").glob("*.json"))
    found = [p for p in candidates if p.is_file() and peek(p) == "{" and not _modelyard_document(p)]
    # the COCO release puts captions_*.json and person_keypoints_*.json beside instances_*.json: boxes are in the last
    instances = [p for p in found if p.name.startswith("instances")]
    return instances or found


def _modelyard_document(path: Path) -> bool:
    with open(path, "rb") as handle:
        return b'"schema": "modelyard.' in handle.read(4096)


def read(path: str | Path) -> tuple[AnnotationSet, dict[str, Path]]:
    path = Path(path)
    root = path.parent if path.is_file() else path
    files_in = [path] if path.is_file() else json_files(path)
    if not files_in:
        raise InvalidInput(f"{path}: no COCO JSON file (an object with images, annotations and categories) found")
    classes: list[str] = []
    items: list[Annotated] = []
    files: dict[str, Path] = {}
    for json_path in files_in:
        document = load_json(json_path)
        _read_document(document, json_path, root, classes, items, files)
    return AnnotationSet("detection", tuple(classes), tuple(items)), files


def _read_document(document, json_path: Path, root: Path, classes: list[str], items: list[Annotated],
                   files: dict[str, Path]) -> None:
    name = json_path.name
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise InvalidInput(f"{name}: not a COCO instances file (expected an object with an 'images' list)")
    categories = document.get("categories") or []
    annotations = document.get("annotations") or []
    if not isinstance(categories, list) or not isinstance(annotations, list):
        raise InvalidInput(f"{name}: 'categories' and 'annotations' must be lists")
    category_names: dict[int, str] = {}
    if not all(isinstance(c, dict) and isinstance(c.get("id"), int) for c in categories):
        odd = next(c for c in categories if not (isinstance(c, dict) and isinstance(c.get("id"), int)))
        raise InvalidInput(f"{name}: a category needs an integer id and a name, got {odd!r}"[:300])
    for category in sorted(categories, key=lambda c: c["id"]):
        if not str(category.get("name", "")).strip():
            raise InvalidInput(f"{name}: a category needs an integer id and a name, got {category!r}"[:300])
        if category["id"] in category_names:
            raise InvalidInput(f"{name}: category id {category['id']} appears twice")
        label = str(category["name"]).strip()
        category_names[category["id"]] = label
        if label not in classes:
            classes.append(label)
    images: dict[object, dict] = {}
    for image in document["images"]:
        if not isinstance(image, dict) or "id" not in image or not image.get("file_name"):
            raise InvalidInput(f"{name}: an image needs an id and a file_name, got {image!r}"[:300])
        if image["id"] in images:
            raise InvalidInput(f"{name}: image id {image['id']} ({image['file_name']}) appears twice")
        images[image["id"]] = image
    boxes: dict[object, list[Box]] = {key: [] for key in images}
    for annotation in annotations:
        if not isinstance(annotation, dict):
            raise InvalidInput(f"{name}: an annotation must be an object, got {annotation!r}"[:300])
        image = images.get(annotation.get("image_id"))
        if image is None:
            raise InvalidInput(f"{name}: annotation {annotation.get('id')} names image id "
                               f"{annotation.get('image_id')!r}, which the file does not list")
        item = str(image["file_name"])
        label = category_names.get(annotation.get("category_id"))
        if label is None:
            raise InvalidInput(f"{item}: unknown class: category id {annotation.get('category_id')!r} is not in "
                               f"{name}'s categories")
        bbox = annotation.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise InvalidInput(f"{item}: annotation {annotation.get('id')} has no [x, y, width, height] bbox")
        try:
            x, y, w, h = (float(v) for v in bbox)
            score = float(annotation["score"]) if annotation.get("score") is not None else None
        except (TypeError, ValueError):
            raise InvalidInput(f"{item}: annotation {annotation.get('id')} has a bbox that is not numbers: "
                               f"{bbox!r}") from None
        boxes[image["id"]].append(Box(x, y, x + w, y + h, label, score))
    json_dir = json_path.parent
    for key, image in images.items():
        item = safe_item(str(image["file_name"]), name).as_posix()
        candidates = [json_dir / "images" / item, json_dir / item, root / "images" / item, root / item]
        stem = json_path.stem.removeprefix("instances_")
        candidates.append(root / stem / item)
        if json_dir != root:  # annotations/instances_val2017.json names val2017/...; never look above the root
            candidates.append(json_dir.parent / stem / item)
        found = find_file(candidates)
        if found is None:
            raise InvalidInput(f"{item}: {name} names this image but no such file exists (looked in "
                               f"{json_dir / 'images'}, {json_dir}, {root / stem})")
        claimed = (_int(image.get("width"), item), _int(image.get("height"), item))
        width, height = check_size(item, claimed, image_size(found, item), name)
        items.append(Annotated.make(item, width, height, boxes[key]))
        files[item] = found


def _int(value, item: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise InvalidInput(f"{item}: image width/height {value!r} is not a number") from None


def write(annotations: AnnotationSet, dest: str | Path, image_source: ImageSource = None) -> dict:
    """Write ``annotations.json`` and ``images/<item>`` into the new or empty folder ``dest``."""
    if annotations.task != "detection":
        raise InvalidInput(f"COCO instances hold boxes; a {annotations.task} set exports as csv or labelstudio")
    copy = ImageWriter(image_source)
    category = {name: i + 1 for i, name in enumerate(annotations.classes)}
    next_id = 1
    with staged_folder(Path(dest)) as stage, open(stage / ANNOTATION_FILE, "w", encoding="utf-8") as out:
        out.write('{"info": {"description": "exported by Modelyard"}, "licenses": [],\n "categories": ')
        out.write(json.dumps([{"id": i, "name": n, "supercategory": ""} for n, i in category.items()]))
        out.write(',\n "images": [')
        for number_, annotated in enumerate(annotations.items, start=1):
            item = safe_name(annotated.item)
            out.write(f'{SEPARATORS[number_ > 1]}{{"id": {number_}, "file_name": {json.dumps(item)}, '
                      f'"width": {annotated.width}, "height": {annotated.height}}}')
            copy(annotated.item, stage / "images", item)
        out.write('],\n "annotations": [')
        for number_, annotated in enumerate(annotations.items, start=1):
            for box in annotated.boxes:
                # formatted by hand, not json.dumps of a dict: a 20k-image export spends its time here
                x, y, w, h = number(box.x1), number(box.y1), number(box.x2 - box.x1), number(box.y2 - box.y1)
                score = f', "score": {box.score!r}' if box.score is not None else ""
                out.write(f'{SEPARATORS[next_id > 1]}{{"id": {next_id}, "image_id": {number_}, '
                          f'"category_id": {category[box.label]}, "bbox": [{x}, {y}, {w}, {h}], '
                          f'"area": {number((box.x2 - box.x1) * (box.y2 - box.y1))}, "iscrowd": 0{score}}}')
                next_id += 1
        out.write("]\n}\n")
    return {"format": NAME, "path": str(dest), "items": len(annotations.items), "images": copy.files,
            "boxes": next_id - 1}
