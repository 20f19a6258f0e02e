"""Detector outputs -> boxes, in plain numpy: the post-processors a model version declares, a model's image input
(stretched or letterboxed by :mod:`modelyard.runtime.letterbox`), and non-maximum suppression.

A detection model declares how its outputs read in its task (``task: {"type": "detection", "classes": [...],
"postprocess": {"kind": ...}}``, see :class:`modelyard.runtime.spec.Postprocess`):

* ``boxes``: the graph decodes itself (what Modelyard's detectors export): outputs ``boxes`` ``(N, K, 4)`` xyxy in
  input pixels, ``scores`` ``(N, K)``, ``classes`` ``(N, K)``, a fixed top K; only the score threshold is applied here.
* ``yolov8``: one output ``(N, 4 + C, A)``: per anchor ``cx, cy, w, h`` in input pixels and C class scores
  (Ultralytics' YOLOv8 export, e.g. nudenet's ``320n.onnx``); decoded here: best class per anchor, threshold,
  ``xywh -> xyxy``, NMS per class, the best ``max_detections``.

Services, batch jobs, ``modelyard evaluate`` and the compare engine all decode through :func:`decode`, so a box means
the same everywhere. Images are letterboxed (scaled to fit keeping the aspect ratio, bilinear, padded) when the
preprocessing says ``resize: letterbox`` (a detector Modelyard trained says so in its ``modelyard.letterbox``
metadata, read at registration); the :class:`~modelyard.runtime.letterbox.Geometry` of :func:`geometry` maps boxes back
to the original image's pixels (``Geometry.to_original``).
"""

from __future__ import annotations

import numpy as np

from modelyard.core.errors import InvalidInput
from modelyard.runtime.letterbox import (
    PAD_VALUE,
    Geometry,
    letterbox,
    letterbox_geometry,
    resize_nearest,
    stretch_geometry,
)


def geometry(pre: dict | None, height: int, width: int, size: tuple[int, int]) -> Geometry:
    """The geometry the preprocessing ``pre`` (a Preprocessing mapping) gives an ``height x width`` image."""
    if pre and pre.get("resize") == "letterbox":
        return letterbox_geometry(height, width, size, pre.get("letterbox_align") or "center")
    return stretch_geometry(height, width, size)


def resize_for(pixels: np.ndarray, pre: dict | None, size: tuple[int, int]) -> np.ndarray:
    """``pixels`` resized for the model as ``pre`` says (stretched, or letterboxed)."""
    if pre and pre.get("resize") == "letterbox":
        pad = pre.get("pad_value")
        return letterbox(pixels, size, pre.get("letterbox_align") or "center",
                         PAD_VALUE if pad is None else float(pad))[0]
    return resize_nearest(pixels, size)


def image_tensor(pixels: np.ndarray, pre: dict | None, size: tuple[int, int], channels, dtype: str) -> np.ndarray:
    """``H x W x C`` uint8 -> ``[1, C, H, W]`` (or NHWC) as the preprocessing ``pre`` (a Preprocessing mapping)
    says: channels matched, resized (stretched or letterboxed), scaled, normalised. Services, batch jobs and
    ``modelyard evaluate`` all build a model's image input here."""
    pre = pre or {}
    layout = pre.get("layout", "NCHW")
    if isinstance(channels, int) and pixels.shape[2] != channels:
        pixels = pixels.repeat(channels, axis=2) if pixels.shape[2] == 1 else pixels[:, :, :channels]
    pixels = resize_for(pixels, pre, (int(size[0]), int(size[1])))
    c = pixels.shape[2]
    mean = np.asarray(pre.get("mean", [0.0] * 3), dtype=np.float32)[:c]
    std = np.asarray(pre.get("std", [1.0] * 3), dtype=np.float32)[:c]
    value = (pixels.astype(np.float32) * float(pre.get("scale", 1 / 255)) - mean) / std
    if layout == "NCHW":
        value = value.transpose(2, 0, 1)
    return np.ascontiguousarray(value[None].astype("float32" if dtype == "bfloat16" else dtype))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = width * height
        union = areas[best] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class (boxes of different classes never suppress each other), best score first."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    # shifting each class's boxes far apart lets one NMS pass do every class
    offset = classes.astype(np.float64)[:, None] * (float(np.abs(boxes).max()) + 1.0) * 2.0
    return nms(boxes + offset, scores, iou_threshold)


Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (n, 4) xyxy, scores (n,), class indices (n,)


def postprocess_of(task: dict | None) -> dict:
    """The post-processing a detection task declares (``kind: boxes`` when it names none)."""
    if not task or task.get("type") != "detection":
        raise InvalidInput("the model is not a detector: its task is not 'detection' (register it with "
                           "--postprocess boxes|yolov8)")
    return {"kind": "boxes", **(task.get("postprocess") or {})}


def decode(task: dict, outputs: dict[str, np.ndarray], threshold: float | None = None) -> list[Detections]:
    """Per input row, the detections (in input pixels) whose score reaches ``threshold`` (default: the declared
    ``score_threshold``), best first."""
    post = postprocess_of(task)
    threshold = float(post.get("score_threshold", 0.25) if threshold is None else threshold)
    limit = int(post.get("max_detections", 100))
    if post["kind"] == "yolov8":
        name = post.get("output") or next(iter(outputs))
        raw = _output(outputs, name)
        if raw.ndim != 3 or raw.shape[1] < 5:
            raise InvalidInput(f"yolov8 output {name!r} has shape {list(raw.shape)}; expected (batch, 4 + classes, "
                               "anchors)")
        return [_decode_yolov8(row, threshold, float(post.get("iou_threshold", 0.45)), limit) for row in raw]
    boxes = _output(outputs, post.get("boxes") or "boxes")
    scores = _output(outputs, post.get("scores") or "scores")
    labels = _output(outputs, post.get("labels") or "classes")
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2] or labels.shape != scores.shape:
        raise InvalidInput(f"detector outputs have shapes boxes {list(boxes.shape)}, scores {list(scores.shape)}, "
                           f"classes {list(labels.shape)}; expected (batch, K, 4), (batch, K), (batch, K)")
    found = []
    for b, s, c in zip(boxes, scores, labels, strict=True):
        keep = np.flatnonzero(np.isfinite(s) & (s >= threshold))
        keep = keep[np.argsort(-s[keep], kind="stable")][:limit]
        found.append((b[keep].astype(np.float64), s[keep].astype(np.float64), np.rint(c[keep]).astype(np.int64)))
    return found


def _output(outputs: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in outputs:
        raise InvalidInput(f"the detector has no output {name!r}; it returns {sorted(outputs)}")
    return np.asarray(outputs[name])


def _decode_yolov8(row: np.ndarray, threshold: float, iou_threshold: float, limit: int) -> Detections:
    anchors = np.asarray(row, dtype=np.float64).T  # (A, 4 + C)
    class_scores = anchors[:, 4:]
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(anchors)), classes]
    keep = np.flatnonzero(np.isfinite(scores) & (scores >= threshold))
    cx, cy, w, h = (anchors[keep, i] for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kept = batched_nms(boxes, scores[keep], classes[keep], iou_threshold)[:limit]
    return boxes[kept], scores[keep][kept], classes[keep][kept].astype(np.int64)


def class_name(classes: list[str] | None, index: int):
    """The name of class ``index`` when the model names its classes, else the index itself."""
    return classes[index] if classes and 0 <= index < len(classes) else int(index)


def as_dicts(found: Detections, classes: list[str] | None, where: Geometry | None = None) -> list[dict]:
    """``[{"box": [x1, y1, x2, y2], "score", "class"}]``, in the original image's pixels when ``where`` is given."""
    boxes, scores, labels = found
    if where is not None:
        boxes = where.to_original(np.asarray(boxes).reshape(-1, 4))
    return [{"box": [round(float(v), 2) for v in box], "score": round(float(score), 5),
             "class": class_name(classes, int(label))}
            for box, score, label in zip(boxes, scores, labels, strict=True)]
