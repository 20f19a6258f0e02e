"""Detector post-processing in numpy: YOLOv8 decoding with NMS, the boxes kind, letterboxing and its inverse."""

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.runtime import detection as det
from modelyard.runtime.letterbox import letterbox, letterbox_geometry


def yolov8_output(anchors: list[tuple]) -> np.ndarray:
    """``(1, 4 + C, A)`` from rows ``(cx, cy, w, h, score_0, ..., score_C-1)``."""
    return np.asarray(anchors, dtype=np.float32).T[None]


def test_yolov8_takes_the_best_class_thresholds_and_suppresses_overlaps_per_class():
    raw = yolov8_output([
        (20, 20, 10, 10, 0.9, 0.1),   # class 0, kept
        (21, 20, 10, 10, 0.8, 0.0),   # same class, IoU ~0.82 with the first: suppressed
        (21, 20, 10, 10, 0.1, 0.7),   # class 1 on the same spot: other classes never suppress each other
        (60, 60, 8, 4, 0.2, 0.1),     # below the threshold
        (60, 60, 8, 4, 0.05, 0.3),    # class 1, kept
    ])
    task = {"type": "detection", "postprocess": {"kind": "yolov8"}}
    [(boxes, scores, classes)] = det.decode(task, {"output0": raw})
    np.testing.assert_allclose(boxes, [[15, 15, 25, 25], [16, 15, 26, 25], [56, 58, 64, 62]])
    np.testing.assert_allclose(scores, [0.9, 0.7, 0.3], rtol=1e-6)
    assert classes.tolist() == [0, 1, 1]
    [(_, high, _)] = det.decode(task, {"output0": raw}, threshold=0.75)
    np.testing.assert_allclose(high, [0.9], rtol=1e-6)
    capped = {"type": "detection", "postprocess": {"kind": "yolov8", "max_detections": 1}}
    assert len(det.decode(capped, {"output0": raw})[0][0]) == 1


def test_boxes_kind_keeps_the_graph_decoding_and_sorts_by_score():
    outputs = {"boxes": np.array([[[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 3, 3]]], np.float32),
               "scores": np.array([[0.3, 0.8, 0.1]], np.float32), "classes": np.array([[2, 0, 1]], np.int64)}
    [(boxes, scores, classes)] = det.decode({"type": "detection"}, outputs)
    assert classes.tolist() == [0, 2] and scores.tolist() == pytest.approx([0.8, 0.3])
    with pytest.raises(InvalidInput, match="no output 'scores'"):
        det.decode({"type": "detection"}, {"boxes": outputs["boxes"], "classes": outputs["classes"]})
    with pytest.raises(InvalidInput, match="not a detector"):
        det.decode({"type": "classification"}, outputs)


@pytest.mark.parametrize("align", ["center", "top-left"])
def test_letterbox_and_back_are_inverse(align):
    pixels = np.arange(30 * 60 * 3, dtype=np.uint8).reshape(30, 60, 3)
    boxed, where = letterbox(pixels, (40, 40), align, pad_value=7)
    assert where == letterbox_geometry(30, 60, (40, 40), align)
    assert boxed.shape == (40, 40, 3)
    top = int(where.pad_y)
    assert top == (10 if align == "center" else 0) and where.pad_x == 0 and where.scale_x == pytest.approx(40 / 60)
    assert (boxed[:top] == 7).all() and (boxed[top + 20:] == 7).all()
    original = np.array([[6.0, 3.0, 30.0, 27.0]])
    inside = original * [where.scale_x, where.scale_y, where.scale_x, where.scale_y] + [
        where.pad_x, where.pad_y, where.pad_x, where.pad_y]
    np.testing.assert_allclose(where.to_original(inside), original)
    # a box reaching into the padding is clipped to the image
    assert where.to_original(np.array([[0, 0, 40, 40]])).tolist() == [[0, 0, 60, 30]]


def test_nms_keeps_the_best_of_each_cluster():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float)
    scores = np.array([0.5, 0.9, 0.4, 0.3])
    assert det.nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert det.batched_nms(boxes, scores, np.array([0, 0, 0, 1]), 0.5).tolist() == [1, 2, 3]
