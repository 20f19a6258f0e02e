"""Detection metrics the way the field computes them: COCO mAP, per-class AP, PR curves, a confusion matrix with a
background row and column, and a score threshold per class.

``coco_map`` is the headline: mAP@0.5 and mAP@[.5:.95] from ``pycocotools`` itself (the reference every paper and
leaderboard quotes), fed in memory. Everything else (precision-recall curves, best-F1 thresholds) comes from
:func:`match_class`, a numpy copy of COCOeval's per-image greedy matching (detections by score, each to the unmatched
ground truth box of highest IoU >= the threshold), so the curves drawn in a report are the very curves whose
101-point interpolated area pycocotools reports: ``tests/train/test_detection_eval.py`` holds the two equal to 1e-4.

Conventions (COCO's): boxes are ``x1, y1, x2, y2`` in pixels (:class:`~modelyard.data.annotations.Box`), IoU is
continuous (no "+1" pixel), at most :data:`MAX_DETECTIONS` detections per image and class are counted (the highest
scoring), a class without ground truth boxes has no AP (``None``) and is left out of the means, nothing is a crowd.

Example::

    result = coco_map(predictions, ground_truth)      # lists of Annotated, matched by item id
    result["map50"], result["map50_95"], result["per_class"]["car"]["ap50"]
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.data.annotations import Annotated, Box

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's: 0.50, 0.55, ..., 0.95 (linspace, as pycocotools builds it)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100
CONFUSION_IOU = 0.5
BACKGROUND = "background"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4 xyxy) with every box in ``b`` (M, 4): an (N, M) array."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _paired(predictions: Sequence[Annotated], ground_truth: Sequence[Annotated]) -> list[tuple[Annotated, tuple]]:
    """Ground truth items in order, each with its predicted boxes (none when the item has no prediction)."""
    truth_ids = [a.item for a in ground_truth]
    if len(set(truth_ids)) != len(truth_ids):
        raise InvalidInput("the ground truth names an item twice")
    by_item: dict[str, tuple[Box, ...]] = {}
    for predicted in predictions:
        if predicted.item in by_item:
            raise InvalidInput(f"predictions name item {predicted.item!r} twice")
        by_item[predicted.item] = predicted.boxes
    unknown = sorted(set(by_item) - set(truth_ids))
    if unknown:
        raise InvalidInput(f"predictions for item(s) with no ground truth: {', '.join(unknown[:5])}")
    for boxes in by_item.values():
        for box in boxes:
            if box.score is None or not np.isfinite(box.score):
                raise InvalidInput(f"predicted box {box.to_list()} has no finite score")
    return [(truth, by_item.get(truth.item, ())) for truth in ground_truth]


def _classes(ground_truth: Sequence[Annotated]) -> list[str]:
    return list(dict.fromkeys(box.label for item in ground_truth for box in item.boxes))


def coco_map(predictions: Sequence[Annotated], ground_truth: Sequence[Annotated],
             classes: Sequence[str] | None = None) -> dict:
    """mAP@0.5, mAP@0.75 and mAP@[.5:.95] over the classes that have ground truth boxes, computed by ``pycocotools``.

    Args:
        predictions: the model's boxes per item (``Box.score`` set), matched to ``ground_truth`` by item id; an
            item left out has no predictions.
        ground_truth: the labeled items (every item counts, with or without boxes).
        classes: the model's class list, when it has one: ``per_class`` then names every class in its order
            (one without ground truth boxes with APs of ``None``), and a box of a class outside it is refused.
            Default: the ground truth's classes, then any other class the predictions name.

    Returns:
        ``{"map50", "map75", "map50_95", "classes", "per_class": {name: {"ap50", "ap75", "ap50_95", "ground_truth",
        "predictions"}}}`` (``classes``: the classes with ground truth boxes, the ones the means are over); a class
        with predictions but no ground truth box has APs of ``None``. With no ground truth box at all every mAP is
        ``None``.
    """
    pairs = _paired(predictions, ground_truth)
    truth_classes = _classes(ground_truth)
    named = sorted({b.label for _, boxes in pairs for b in boxes} - set(truth_classes))
    if classes is not None:
        known = list(dict.fromkeys(classes))
        for truth, boxes in pairs:
            for side, found in (("ground truth", truth.boxes), ("prediction", boxes)):
                stray = next((b.label for b in found if b.label not in known), None)
                if stray is not None:
                    raise InvalidInput(f"{side} {truth.item}: class {stray!r} is not in the class list")
        truth_classes = [name for name in known if name in set(truth_classes)]
        named = [name for name in known if name not in set(truth_classes)]
    counts = {name: {"ground_truth": 0, "predictions": 0} for name in truth_classes + named}
    for truth, boxes in pairs:
        for box in truth.boxes:
            counts[box.label]["ground_truth"] += 1
        for box in boxes:
            counts[box.label]["predictions"] += 1
    order = list(dict.fromkeys(classes)) if classes is not None else list(counts)
    per_class = {name: {"ap50": None, "ap75": None, "ap50_95": None, **counts[name]} for name in order}
    result = {"map50": None, "map75": None, "map50_95": None, "classes": truth_classes, "per_class": per_class}
    if not truth_classes:
        return result
    precision = _pycocotools_precision(pairs, truth_classes)  # (T, R, K) at area "all", 100 detections
    for k, name in enumerate(truth_classes):
        for key, t in (("ap50", 0), ("ap75", 5)):
            per_class[name][key] = _mean_valid(precision[t, :, k])
        per_class[name]["ap50_95"] = _mean_valid(precision[:, :, k])
    result.update(map50=_mean_valid(precision[0]), map75=_mean_valid(precision[5]), map50_95=_mean_valid(precision))
    return result


def _mean_valid(values: np.ndarray) -> float | None:
    """COCOeval.summarize's mean: over the entries that are not -1 (no ground truth)."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else None


def _pycocotools_precision(pairs: list[tuple[Annotated, tuple]], classes: list[str]) -> np.ndarray:
    from modelyard.core.extras import require

    require("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    category = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations, detections = [], [], []
    for image_id, (truth, boxes) in enumerate(pairs, start=1):
        images.append({"id": image_id, "width": truth.width, "height": truth.height})
        for box in truth.boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category[box.label],
                                "bbox": list(box.xywh()), "area": box.area, "iscrowd": 0})
        detections += [{"image_id": image_id, "category_id": category[b.label], "bbox": list(b.xywh()),
                        "score": float(b.score)} for b in boxes if b.label in category]
    quiet = contextlib.redirect_stdout(io.StringIO())  # pycocotools prints progress on stdout
    with quiet:
        truth_api = COCO()
        truth_api.dataset = {"images": images, "annotations": annotations,
                             "categories": [{"id": i, "name": n} for n, i in category.items()]}
        truth_api.createIndex()
        if not detections:  # loadRes cannot take an empty list; no detection means zero precision everywhere
            return np.zeros((len(IOU_THRESHOLDS), len(RECALL_POINTS), len(classes)))
        evaluator = COCOeval(truth_api, truth_api.loadRes(detections), "bbox")
        evaluator.params.maxDets = [1, 10, MAX_DETECTIONS]
        evaluator.evaluate()
        evaluator.accumulate()
    # precision: [T, R, K, A, M]; area range 0 is "all", maxDets index -1 is MAX_DETECTIONS
    return evaluator.eval["precision"][:, :, :, 0, -1]


def match_class(pairs: list[tuple[Annotated, tuple]], label: str, iou_threshold: float,
                max_detections: int = MAX_DETECTIONS) -> tuple[np.ndarray, np.ndarray, int]:
    """COCOeval's matching for one class at one IoU threshold: ``(scores, true_positive, ground_truth_count)`` with
    the detections of every image in COCO's order (images in turn, each image's best ``max_detections`` by score),
    not yet sorted across images."""
    scores, hits, total = [], [], 0
    for truth, boxes in pairs:
        gt = np.array([[b.x1, b.y1, b.x2, b.y2] for b in truth.boxes if b.label == label]).reshape(-1, 4)
        mine = [b for b in boxes if b.label == label]
        total += len(gt)
        if not mine:
            continue
        order = np.argsort([-b.score for b in mine], kind="mergesort")[:max_detections]
        mine = [mine[i] for i in order]
        dt = np.array([[b.x1, b.y1, b.x2, b.y2] for b in mine])
        ious = box_iou(dt, gt)
        taken = np.zeros(len(gt), dtype=bool)
        for d in range(len(mine)):
            best, matched = min(iou_threshold, 1 - 1e-10), -1
            for g in range(len(gt)):
                if taken[g] or ious[d, g] < best:
                    continue
                best, matched = ious[d, g], g
            if matched >= 0:
                taken[matched] = True
            scores.append(mine[d].score)
            hits.append(matched >= 0)
    return np.asarray(scores, dtype=np.float64), np.asarray(hits, dtype=bool), total


def precision_recall(scores: np.ndarray, hits: np.ndarray, total: int) -> dict:
    """The PR curve of one class: ``precision``, ``recall`` and ``threshold`` (the score of each detection, best
    first) and the 101-point interpolated AP the way COCOeval.accumulate computes it (None without ground truth)."""
    order = np.argsort(-scores, kind="mergesort")
    hits, scores = hits[order], scores[order]
    tp = np.cumsum(hits).astype(np.float64)
    fp = np.cumsum(~hits).astype(np.float64)
    recall = tp / total if total else np.zeros_like(tp)
    precision = tp / np.maximum(tp + fp, np.spacing(1))
    ap = None
    if total:
        # precision made non-increasing from the right, read at recall 0, 0.01, ..., 1 (0 where never reached)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        where = np.searchsorted(recall, RECALL_POINTS, side="left")
        sampled = np.zeros(len(RECALL_POINTS))
        reached = where < len(envelope)
        sampled[reached] = envelope[where[reached]]
        ap = float(sampled.mean())
    return {"precision": precision, "recall": recall, "threshold": scores, "ap": ap}


def best_f1(curve: dict) -> dict | None:
    """The score threshold with the best F1 on a PR curve: ``{"threshold", "f1", "precision", "recall"}``, None
    when there is no detection or no ground truth."""
    precision, recall = curve["precision"], curve["recall"]
    if not len(precision) or curve["ap"] is None:
        return None
    # a threshold keeps every detection scoring at least it: among equal scores only the last one is a real cut
    cuts = np.r_[curve["threshold"][1:] != curve["threshold"][:-1], True]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(cuts, f1, -1.0)
    i = int(np.argmax(f1))
    return {"threshold": float(curve["threshold"][i]), "f1": float(f1[i]), "precision": float(precision[i]),
            "recall": float(recall[i])}


def confusion_matrix(pairs: list[tuple[Annotated, tuple]], classes: list[str], score_threshold: float,
                     iou_threshold: float = CONFUSION_IOU) -> list[list[int]]:
    """Counts with a background class last: rows are true classes, columns predicted ones. Predictions scoring at
    least ``score_threshold`` are matched to ground truth boxes of any class, highest IoU (>= ``iou_threshold``)
    first, one to one; an unmatched prediction counts in the background row (a false alarm), an unmatched true box
    in the background column (missed)."""
    index = {name: i for i, name in enumerate(classes)}
    background = len(classes)
    matrix = np.zeros((len(classes) + 1, len(classes) + 1), dtype=np.int64)
    for truth, boxes in pairs:
        kept = [b for b in boxes if b.score >= score_threshold and b.label in index]
        gt = np.array([[b.x1, b.y1, b.x2, b.y2] for b in truth.boxes]).reshape(-1, 4)
        dt = np.array([[b.x1, b.y1, b.x2, b.y2] for b in kept]).reshape(-1, 4)
        ious = box_iou(gt, dt)
        used_gt, used_dt = set(), set()
        if ious.size:
            candidates = np.argwhere(ious >= iou_threshold)
            for g, d in sorted(candidates.tolist(), key=lambda gd: -ious[gd[0], gd[1]]):
                if g in used_gt or d in used_dt:
                    continue
                used_gt.add(g)
                used_dt.add(d)
                matrix[index[truth.boxes[g].label], index[kept[d].label]] += 1
        for g, box in enumerate(truth.boxes):
            if g not in used_gt:
                matrix[index[box.label], background] += 1
        for d, box in enumerate(kept):
            if d not in used_dt:
                matrix[background, index[box.label]] += 1
    return matrix.tolist()


def _downsample_curve(recall: np.ndarray, precision: np.ndarray, points: int = 200) -> tuple[list, list]:
    if len(recall) > points:
        keep = np.unique(np.linspace(0, len(recall) - 1, points).astype(int))
        recall, precision = recall[keep], precision[keep]
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    return [round(float(v), 5) for v in recall], [round(float(v), 5) for v in envelope]


def detection_report(predictions: Sequence[Annotated], ground_truth: Sequence[Annotated],
                     classes: Sequence[str] | None = None, confusion_threshold: float | None = None) -> dict:
    """Everything an evaluation shows: ``metrics`` (COCO mAPs), ``per_class`` (APs, counts, best-F1 threshold with
    its precision/recall), ``curves`` (PR at IoU 0.5 per class), ``confusion_matrix`` (+ ``confusion_classes``,
    background last) and ``suggested_threshold`` (the best F1 over all boxes of all classes together).

    Args:
        classes: the model's class list (order of the confusion matrix); default: the ground truth's classes, then
            any other class the predictions name.
        confusion_threshold: the score a prediction needs to count in the confusion matrix. Default: the suggested
            threshold.
    """
    pairs = _paired(predictions, ground_truth)
    headline = coco_map(predictions, ground_truth)
    names = list(classes) if classes is not None else list(headline["per_class"])
    names += [n for n in headline["per_class"] if n not in names]
    per_class, curves, pooled_scores, pooled_hits, pooled_total = {}, [], [], [], 0
    for name in names:
        scores, hits, total = match_class(pairs, name, float(IOU_THRESHOLDS[0]))
        pooled_scores.append(scores)
        pooled_hits.append(hits)
        pooled_total += total
        curve = precision_recall(scores, hits, total)
        stats = headline["per_class"].get(name, {"ap50": None, "ap75": None, "ap50_95": None, "ground_truth": 0,
                                                 "predictions": 0})
        per_class[name] = {**stats, "best_f1": best_f1(curve)}
        if total and len(scores):
            recall, precision = _downsample_curve(curve["recall"], curve["precision"])
            curves.append({"class": name, "ap50": stats["ap50"], "recall": recall, "precision": precision})
    pooled = precision_recall(np.concatenate(pooled_scores) if pooled_scores else np.zeros(0),
                              np.concatenate(pooled_hits) if pooled_hits else np.zeros(0, bool), pooled_total)
    suggestion = best_f1(pooled)
    threshold = confusion_threshold if confusion_threshold is not None else (
        suggestion["threshold"] if suggestion else 0.25)
    return {
        "metrics": {"map50": headline["map50"], "map75": headline["map75"], "map50_95": headline["map50_95"]},
        "per_class": per_class,
        "curves": curves,
        "suggested_threshold": suggestion,
        "confusion_threshold": float(threshold),
        "confusion_classes": [*names, BACKGROUND],
        "confusion_matrix": confusion_matrix(pairs, names, threshold),
        "images": len(pairs),
        "ground_truth_boxes": int(sum(len(t.boxes) for t, _ in pairs)),
        "predicted_boxes": int(sum(len(b) for _, b in pairs)),
    }
