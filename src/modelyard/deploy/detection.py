"""Detections in answers: a detector's outputs as ``{"box": [x1, y1, x2, y2], "score", "class"}`` per box, in the
original image's pixels.

A version whose task is ``detection`` (:mod:`modelyard.runtime.detection` decodes its declared post-processor) is
answered with ``detections`` by the real-time services and with one row per box by batch jobs over images. An image
body's size is remembered while it is decoded, so letterboxing (or stretching) is undone and boxes are clipped to the
image the caller sent; arrays sent as ``.npy``/JSON get boxes in the model's input pixels.
"""

from __future__ import annotations

import math

import numpy as np

from modelyard.deploy.errors import BadRequest
from modelyard.registry.signature import Signature


def is_detector(signature: Signature) -> bool:
    return bool(signature.task) and signature.task.get("type") == "detection"


def threshold_param(value: str | None) -> float | None:
    """``?threshold=`` as a score in [0, 1] (None when absent); anything else is a 400 naming it."""
    if value is None or value == "":
        return None
    try:
        threshold = float(value)
    except ValueError:
        raise BadRequest(f"threshold={value[:40]!r} is not a number; give a score between 0 and 1") from None
    if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
        raise BadRequest(f"threshold={value[:40]!r} must be between 0 and 1")
    return threshold


def image_geometry(signature: Signature, image_size: tuple[int, int] | None):
    """Where the sent image lies in the model input (None for array bodies: boxes stay in input pixels)."""
    from modelyard.deploy.images import target_size
    from modelyard.runtime.detection import geometry

    if image_size is None or signature.preprocessing is None:
        return None
    target = signature.input(signature.image_input)
    return geometry(signature.preprocessing, image_size[0], image_size[1],
                    target_size(signature.preprocessing, target))


def detections(signature: Signature, outputs: dict[str, np.ndarray], image_size: tuple[int, int] | None,
               threshold: float | None) -> list[dict] | list[list[dict]]:
    """The reply's ``detections``: one image's list of boxes, or one list per row for a multi-row array body."""
    from modelyard.runtime.detection import as_dicts, decode

    found = decode(signature.task, outputs, threshold)
    where = image_geometry(signature, image_size)
    classes = signature.task.get("classes")
    rows = [as_dicts(row, classes, where) for row in found]
    return rows[0] if len(rows) == 1 else rows


def encode_detections(ref: str, found: list) -> bytes:
    import json

    return json.dumps({"detections": found, "model": ref}, separators=(",", ":"), allow_nan=False).encode()


def padded(signature: Signature, outputs: dict[str, np.ndarray], sizes: list[tuple[int, int]] | None,
           threshold: float | None) -> dict[str, np.ndarray]:
    """A chunk of a batch job: per input its boxes (in the original image's pixels when ``sizes`` gives each
    image's (height, width), else in input pixels), padded to the most any input has, with the ``count`` that are
    real (fixed-width arrays keep a chunk one row per input, so the resumable part files stay one key per input)."""
    from modelyard.runtime.detection import decode, postprocess_of

    found = decode(signature.task, outputs, threshold)
    width = int(postprocess_of(signature.task).get("max_detections", 100))  # the same in every chunk
    boxes = np.zeros((len(found), width, 4))
    scores = np.zeros((len(found), width))
    labels = np.full((len(found), width), -1, dtype=np.int64)
    count = np.zeros(len(found), dtype=np.int64)
    for i, (b, s, c) in enumerate(found):
        n = len(s)
        where = image_geometry(signature, sizes[i]) if sizes is not None else None
        boxes[i, :n] = where.to_original(b) if where is not None else b
        scores[i, :n], labels[i, :n], count[i] = s, c, n
    return {"boxes": boxes, "scores": scores, "labels": labels, "count": count}


def box_rows(signature: Signature, keys: list, merged: dict[str, np.ndarray]) -> tuple[list, dict[str, np.ndarray]]:
    """The padded per-image arrays of a whole batch job -> one row per box: ``file`` plus ``x1, y1, x2, y2,
    score, class`` (the class name, or its index when the model names none) and ``class_index``."""
    classes = signature.task.get("classes")
    rows_keys, picks = [], []
    for i, key in enumerate(keys):
        for j in range(int(merged["count"][i])):
            rows_keys.append(key)
            picks.append((i, j))
    index = np.array(picks, dtype=np.int64).reshape(-1, 2)
    boxes = merged["boxes"][index[:, 0], index[:, 1]] if len(index) else np.zeros((0, 4))
    labels = merged["labels"][index[:, 0], index[:, 1]] if len(index) else np.zeros(0, dtype=np.int64)
    names = [str(classes[c]) if classes and 0 <= c < len(classes) else str(c) for c in labels.tolist()]
    columns = {"x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2], "y2": boxes[:, 3],
               "score": merged["scores"][index[:, 0], index[:, 1]] if len(index) else np.zeros(0),
               "class": np.asarray(names, dtype=str), "class_index": labels}
    return rows_keys, columns
