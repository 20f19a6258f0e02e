"""Label Studio task JSON: a list of ``{"data": {"image": ...} | {"text": ...}, "annotations": [{"result": [...]}],
"predictions": [{"model_version", "score", "result": [...]}]}``.

A box is a ``rectanglelabels`` result whose ``value`` holds ``x, y, width, height`` in **percent** of the image
(0-100, top-left corner) and ``rectanglelabels``; a class label is a ``choices`` result. Human labels travel in
``annotations``, a model's proposals (boxes with a score) in ``predictions``.

Reading takes a JSON file, or a folder holding one (a list of tasks). For each task the last annotation that was
not cancelled is the human truth; prediction boxes keep their region ``score``, else the prediction's ``score``,
else 1.0. Image references are the item ids, with Label Studio's URL forms undone (``/data/local-files/?d=x/a.png``
is ``x/a.png``; an upload or web URL is its file name) and looked up in the folder's ``images/`` and the folder.
Sizes come from the image files (percentages need them; Label Studio's ``original_width`` is only a hint).
Rotated boxes and region types with no box or class form here (polygons, brushes, keypoints, spans) are refused
with the item named rather than dropped. Class order comes from ``label_config.xml`` (the labeling config written
beside an export) when present, else the labels used, sorted.

Writing produces ``tasks.json`` (written one task at a time; ``data.image`` is the item id as a relative URL, so
``#``, ``?`` and ``%`` are percent-escaped), ``label_config.xml`` (paste it into the project's labeling setup) and
``images/<item>`` (serve that folder as local-files storage). Text items carry their text in
``data.text`` and their id in ``data.item``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, quote, unquote, urlparse
from xml.sax.saxutils import quoteattr

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, AnnotationSet, Box
from modelyard.data.formats.common import (
    ImageSource,
    ImageWriter,
    class_order,
    find_file,
    image_size,
    load_json,
    peek,
    safe_item,
    safe_name,
    snap,
    staged_folder,
)

NAME = "labelstudio"
TASKS_FILE = "tasks.json"
CONFIG_FILE = "label_config.xml"
# result types that add free-form facts to a task without labeling it: skipped
IGNORED_TYPES = {"textarea", "rating", "number", "datetime", "relation"}
PREDICTION_DEFAULT_SCORE = 1.0


def json_files(path: Path) -> list[Path]:
    return [p for p in sorted(path.glob("*.json")) if p.is_file() and peek(p) == "["]


def read(path: str | Path) -> tuple[AnnotationSet, dict[str, Path]]:
    path = Path(path)
    if path.is_dir():
        found = json_files(path)
        if len(found) != 1:
            raise InvalidInput(f"{path}: expected one Label Studio JSON export (a list of tasks), found "
                               f"{len(found)}" + (f": {', '.join(p.name for p in found[:5])}" if found else ""))
        json_path, root = found[0], path
    else:
        json_path, root = path, path.parent
    tasks = load_json(json_path)
    if not isinstance(tasks, list):
        raise InvalidInput(f"{json_path.name}: a Label Studio export is a list of tasks")
    declared, config_task = _read_config(root / CONFIG_FILE)
    items, files, used, multi, has_boxes, has_text = [], {}, [], False, False, False
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise InvalidInput(f"{json_path.name}: task {number} has no 'data' object")
        data = task["data"]
        if "text" in data and "image" not in data:
            has_text = True
            item = str(data.get("item") or task.get("id") or number)
            labels, boxes = _results(task, item, 0, 0)
            if boxes:
                raise InvalidInput(f"{item}: a text task has boxes")
            items.append(Annotated.make(item, labels=labels, text=str(data["text"])))
        else:
            ref = data.get("image")
            if not isinstance(ref, str) or not ref:
                raise InvalidInput(f"{json_path.name}: task {task.get('id', number)} has neither data.image nor "
                                   "data.text")
            item = _item_of(ref, json_path.name)
            image = find_file([root / "images" / item, root / item])
            if image is None:
                raise InvalidInput(f"{item}: task {task.get('id', number)} names this image but no such file exists "
                                   f"(looked in {root / 'images'} and {root})")
            width, height = image_size(image, item)
            labels, boxes = _results(task, item, width, height)
            items.append(Annotated.make(item, width, height, boxes, labels))
            files[item] = image
            has_boxes = has_boxes or bool(boxes)
        multi = multi or len(items[-1].labels) > 1
        used.extend(items[-1].labels)
        used.extend(b.label for b in items[-1].boxes)
    task = config_task or ("text" if has_text else "detection" if has_boxes
                           else "multilabel" if multi else "classification")
    return AnnotationSet(task, class_order(declared, used), tuple(items)), files


def _item_of(ref: str, where: str) -> str:
    """The item id of an image reference in Label Studio's URL forms."""
    parsed = urlparse(ref)
    query = parse_qs(parsed.query)
    if "d" in query and "local-files" in parsed.path:  # parse_qs has undone the percent-escapes already
        return safe_item(query["d"][0], where).as_posix()
    if parsed.scheme or ref.startswith("/"):  # an upload, a web or bucket URL, an absolute path: its file name
        return PurePosixPath(unquote(parsed.path)).name
    return safe_item(unquote(ref), where).as_posix()


def _results(task: dict, item: str, width: int, height: int) -> tuple[list[str], list[Box]]:
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    labels: list[str] = []
    boxes: list[Box] = []
    if annotations:
        for result in annotations[-1].get("result") or []:
            _one_result(result, item, width, height, None, labels, boxes)
    for prediction in task.get("predictions") or []:
        if not isinstance(prediction, dict):
            raise InvalidInput(f"{item}: a prediction must be an object")
        fallback = prediction.get("score")
        for result in prediction.get("result") or []:
            score = result.get("score", fallback) if isinstance(result, dict) else None
            # class choices of a model have no place in the set (labels carry no score): only boxes are kept
            if isinstance(result, dict) and result.get("type") == "choices":
                continue
            _one_result(result, item, width, height, PREDICTION_DEFAULT_SCORE if score is None else float(score),
                        labels, boxes)
    return labels, boxes


def _one_result(result, item: str, width: int, height: int, score: float | None, labels: list[str],
                boxes: list[Box]) -> None:
    if not isinstance(result, dict) or not isinstance(result.get("value"), dict):
        raise InvalidInput(f"{item}: a result must be an object with a 'value'")
    kind, value = result.get("type"), result["value"]
    if kind in IGNORED_TYPES:
        return
    if kind == "choices":
        labels.extend(str(c) for c in value.get("choices") or [])
        return
    if kind != "rectanglelabels":
        raise InvalidInput(f"{item}: result type {kind!r} cannot be imported (only rectanglelabels boxes and choices "
                           "class labels)")
    names = value.get("rectanglelabels") or []
    if not names:
        raise InvalidInput(f"{item}: a rectangle has no label")
    try:
        x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
        rotation = float(value.get("rotation") or 0)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{item}: a rectangle needs numeric x, y, width and height (percent)") from None
    if abs(rotation) % 360 > 1e-6:
        raise InvalidInput(f"{item}: a rectangle is rotated by {rotation} degrees; only axis-aligned boxes can be "
                           "imported")
    x1, y1 = snap(x / 100 * width, width), snap(y / 100 * height, height)
    x2, y2 = snap((x + w) / 100 * width, width), snap((y + h) / 100 * height, height)
    boxes.extend(Box(x1, y1, x2, y2, str(name), score) for name in names)


def _read_config(path: Path) -> tuple[list[str] | None, str | None]:
    """Class order and task from a labeling config; ``(None, None)`` without one."""
    if not path.is_file():
        return None, None
    try:
        view = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InvalidInput(f"{path.name}: not well-formed XML ({exc})") from None
    rectangles = view.find(".//RectangleLabels")
    if rectangles is not None:
        return [e.get("value", "") for e in rectangles.iter("Label")], "detection"
    choices = view.find(".//Choices")
    if choices is None:
        raise InvalidInput(f"{path.name}: no <RectangleLabels> or <Choices> in the labeling config")
    names = [e.get("value", "") for e in choices.iter("Choice")]
    if view.find(".//Text") is not None:
        return names, "text"
    return names, "multilabel" if choices.get("choice") == "multiple" else "classification"


def write(annotations: AnnotationSet, dest: str | Path, image_source: ImageSource = None) -> dict:
    """Write ``tasks.json``, ``label_config.xml`` and ``images/<item>`` into the new or empty folder ``dest``."""
    copy = ImageWriter(image_source)
    boxes = 0
    with staged_folder(Path(dest)) as stage:
        (stage / CONFIG_FILE).write_text(_config(annotations), encoding="utf-8")
        with open(stage / TASKS_FILE, "w", encoding="utf-8") as out:
            out.write("[")
            for number, annotated in enumerate(annotations.items, start=1):
                out.write(("\n" if number == 1 else ",\n") + json.dumps(_task(annotations.task, annotated, number)))
                if annotations.task != "text":
                    copy(annotated.item, stage / "images", safe_name(annotated.item))
                boxes += len(annotated.boxes)
            out.write("\n]\n")
    return {"format": NAME, "path": str(dest), "items": len(annotations.items), "images": copy.files,
            "boxes": boxes}


def _task(task: str, annotated: Annotated, number: int) -> dict:
    if task == "text":
        data = {"text": annotated.text, "item": annotated.item}
        target = "text"
    else:
        data = {"image": quote(safe_name(annotated.item), safe="/")}  # a URL: "#", "?" and "%" are escaped
        target = "image"
    truth: list[dict] = []
    proposed: list[dict] = []
    for index, box in enumerate(annotated.boxes):
        w, h = annotated.width, annotated.height
        result = {"id": f"b{index}", "type": "rectanglelabels", "from_name": "label", "to_name": target,
                  "original_width": w, "original_height": h, "image_rotation": 0,
                  "value": {"x": box.x1 / w * 100, "y": box.y1 / h * 100, "width": box.width / w * 100,
                            "height": box.height / h * 100, "rotation": 0, "rectanglelabels": [box.label]}}
        if box.score is None:
            truth.append(result)
        else:
            proposed.append({**result, "score": box.score})
    if annotated.labels:
        truth.append({"id": "c0", "type": "choices", "from_name": "choice", "to_name": target,
                      "value": {"choices": list(annotated.labels)}})
    record: dict = {"id": number, "data": data, "annotations": [{"id": number, "result": truth}] if truth else []}
    if proposed:
        record["predictions"] = [{"model_version": "modelyard", "score": min(b["score"] for b in proposed),
                                  "result": proposed}]
    return record


def _config(annotations: AnnotationSet) -> str:
    if annotations.task == "detection":
        labels = "".join(f"    <Label value={quoteattr(c)}/>\n" for c in annotations.classes)
        return (f'<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n'
                f"{labels}  </RectangleLabels>\n</View>\n")
    target = "text" if annotations.task == "text" else "image"
    shown = '<Text name="text" value="$text"/>' if target == "text" else '<Image name="image" value="$image"/>'
    many = "multiple" if annotations.task in ("multilabel", "text") else "single"
    choices = "".join(f"    <Choice value={quoteattr(c)}/>\n" for c in annotations.classes)
    return (f'<View>\n  {shown}\n  <Choices name="choice" toName="{target}" choice="{many}">\n{choices}'
            "  </Choices>\n</View>\n")
