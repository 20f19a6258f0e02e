"""Detection mAP the way the field computes it: COCO's definition, by ``pycocotools`` itself.

``coco_map(predictions, ground_truth)`` takes the same frozen values as every dataset and model in Modelyard
(:class:`~modelyard.data.annotations.Annotated`: boxes in absolute pixels, predictions with a ``score``), converts
them to COCO's JSON in memory and runs ``COCOeval`` (bbox, 101-point interpolated precision, IoU 0.50:0.05:0.95,
``maxDets`` 100, all areas). Items are matched by their id; an item without predictions counts as all missed, a
prediction for an unknown item is an error.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated


def _coco_ground_truth(ground_truth: Sequence[Annotated], classes: Sequence[str]) -> dict:
    category = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for image_id, item in enumerate(ground_truth, start=1):
        images.append({"id": image_id, "file_name": item.item, "width": item.width, "height": item.height})
        for box in item.boxes:
            x, y, w, h = box.xywh()
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category[box.label],
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for name, i in category.items()]}


def coco_map(predictions: Sequence[Annotated], ground_truth: Sequence[Annotated],
             classes: Sequence[str] | None = None) -> dict:
    """mAP@0.5 and mAP@[.5:.95] of ``predictions`` against ``ground_truth`` (COCO bbox definition).

    Args:
        predictions: one :class:`Annotated` per item (any subset of the ground truth's items), boxes with scores.
        ground_truth: the labeled items; their boxes' scores are ignored.
        classes: the class list (its order names ``per_class``); default: every label in the ground truth, sorted.

    Returns:
        ``{"map50", "map50_95", "per_class": {name: {"ap50", "ap50_95", "instances"}}}``; a class without ground
        truth boxes has ``None`` APs and is left out of the means (as in COCO). With no ground-truth box at all,
        both means are ``None``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if classes is None:
        classes = sorted({b.label for item in ground_truth for b in item.boxes})
    classes = list(classes)
    known = set(classes)
    image_ids = {item.item: i for i, item in enumerate(ground_truth, start=1)}
    if len(image_ids) != len(ground_truth):
        raise InvalidInput("ground truth: an item appears twice")
    for item in ground_truth:
        for box in item.boxes:
            if box.label not in known:
                raise InvalidInput(f"ground truth {item.item}: class {box.label!r} is not in the class list")
    detections = []
    for item in predictions:
        if item.item not in image_ids:
            raise InvalidInput(f"prediction for {item.item!r}, which is not in the ground truth")
        for box in item.boxes:
            if box.label not in known:
                raise InvalidInput(f"prediction {item.item}: class {box.label!r} is not in the class list")
            if box.score is None:
                raise InvalidInput(f"prediction {item.item}: a predicted box needs a score")
            detections.append({"image_id": image_ids[item.item], "category_id": classes.index(box.label) + 1,
                               "bbox": list(box.xywh()), "score": float(box.score)})
    instances = {name: 0 for name in classes}
    for item in ground_truth:
        for box in item.boxes:
            instances[box.label] += 1
    per_class = {name: {"ap50": None, "ap50_95": None, "instances": instances[name]} for name in classes}
    if not any(instances.values()):
        return {"map50": None, "map50_95": None, "per_class": per_class}
    if not detections:  # COCO.loadRes refuses an empty list; nothing predicted is AP 0 for every labeled class
        for name in classes:
            if instances[name]:
                per_class[name].update(ap50=0.0, ap50_95=0.0)
        return {"map50": 0.0, "map50_95": 0.0, "per_class": per_class}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = _coco_ground_truth(ground_truth, classes)
        truth.createIndex()
        result = truth.loadRes(detections)
        evaluation = COCOeval(truth, result, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # precision: [IoU thresholds (10), recall points (101), classes, area ranges (all first), maxDets (100 last)]
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    for k, name in enumerate(classes):
        if not instances[name]:
            continue
        curve = precision[:, :, k]
        per_class[name]["ap50"] = float(np.mean(curve[0][curve[0] > -1])) if (curve[0] > -1).any() else 0.0
        valid = curve[curve > -1]
        per_class[name]["ap50_95"] = float(np.mean(valid)) if valid.size else 0.0
    return {"map50": max(0.0, float(evaluation.stats[1])), "map50_95": max(0.0, float(evaluation.stats[0])),
            "per_class": per_class}
