"""Box-level agreement in the compare engine, and nudenet's pretrained YOLOv8 detector: registered, served,
quantized to INT8 through the passes and compared against its float self."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelyard.migrate.model.detection_agreement import DetectionStats, match_boxes
from modelyard.migrate.model.metrics import Thresholds

TASK = {"type": "detection", "postprocess": {"kind": "yolov8", "score_threshold": 0.25, "iou_threshold": 0.45,
                                             "max_detections": 100}}


def yolo(anchors):
    return {"output0": np.asarray(anchors, np.float32).T[None]}


def test_matching_is_one_to_one_within_a_class():
    reference = (np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]), np.array([0, 1]))
    target = (np.array([[1, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]], float), np.array([0.9, 0.8, 0.7]),
              np.array([0, 0, 0]))
    assert [(r, t) for r, t, _ in match_boxes(reference, target)] == [(0, 2)]  # class 1 has no partner


def test_detection_stats_count_matched_missing_and_extra_boxes():
    stats = DetectionStats(TASK, "output0")
    stats.observe(yolo([(20, 20, 10, 10, 0.9, 0.0), (60, 60, 10, 10, 0.0, 0.8)]),
                  yolo([(21, 20, 10, 10, 0.85, 0.0), (60, 60, 10, 10, 0.1, 0.1)]))  # the second box is lost
    stats.observe(yolo([(5, 5, 4, 4, 0.1, 0.1)]), yolo([(5, 5, 4, 4, 0.1, 0.1)]))  # nothing either side
    result = stats.result(Thresholds(pass_top1_agreement=0.95, fail_top1_agreement=0.5))
    assert result["count"] == 2 and result["reference_boxes"] == 2 and result["target_boxes"] == 1
    assert result["matched_boxes"] == 1 and result["box_agreement"] == pytest.approx(2 / 3)
    assert result["mean_iou"] == pytest.approx(90 / 110) and result["max_score_diff"] == pytest.approx(0.05)
    assert result["verdict"] == "warn" and "box agreement 0.667" in result["reasons"][0]


@pytest.fixture(scope="module")
def nudenet(tmp_path_factory):
    """nudenet's 320n.onnx and two photos with things it finds (scikit-learn's sample images)."""
    from modelyard.core.extras import MissingDependency
    from modelyard.runtime.pretrained import nudenet_onnx

    try:
        path = nudenet_onnx()
    except MissingDependency as exc:
        pytest.skip(str(exc))
    found = importlib.util.find_spec("sklearn")  # located, not imported: importing scikit-learn takes seconds
    if found is None or not found.submodule_search_locations:
        pytest.skip("the sample photos ship with scikit-learn")
    photos = tmp_path_factory.mktemp("photos")
    for name in ("flower.jpg", "china.jpg"):
        shutil.copy(Path(found.submodule_search_locations[0]) / "datasets" / "images" / name, photos / name)
    return path, photos


@pytest.mark.slow  # loads a 12 MB detector: ~3 s
def test_nudenet_registers_as_a_yolov8_detector_and_serves_boxes(nudenet):
    from modelyard.deploy.detection import detections
    from modelyard.deploy.images import decode_image, preprocess
    from modelyard.registry.signature import read_signature
    from modelyard.runtime.pretrained import NUDENET_PREPROCESSING, NUDENET_TASK

    path, photos = nudenet
    signature = read_signature(path, "onnx", NUDENET_PREPROCESSING, NUDENET_TASK)
    assert len(signature.task["classes"]) == 18 and signature.task["classes"][1] == "FACE_FEMALE"  # from metadata
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    pixels = decode_image((photos / "flower.jpg").read_bytes())
    feeds = {"images": preprocess(pixels, signature.preprocessing, signature.input("images"))}
    outputs = dict(zip(["output0"], session.run(None, feeds), strict=True))
    found = detections(signature, outputs, pixels.shape[:2], threshold=0.02)
    assert found, "nudenet finds something in the flower photo at 0.02"
    for box in found:
        x1, y1, x2, y2 = box["box"]
        assert 0 <= x1 < x2 <= pixels.shape[1] and 0 <= y1 < y2 <= pixels.shape[0]  # the photo's own pixels
        assert box["class"] in signature.task["classes"] and box["score"] >= 0.02


@pytest.mark.slow  # INT8 calibration of a 3 M-parameter model and a compare run: ~10 s on 2 cores
def test_nudenet_int8_through_the_passes_keeps_its_boxes(nudenet, tmp_path):
    from modelyard.migrate.model.compare import compare_models
    from modelyard.migrate.model.passes import get_pass
    from modelyard.runtime.pretrained import NUDENET_PREPROCESSING, yolov8_head_nodes
    from modelyard.runtime.spec import Artifact, ModelSpec

    path, photos = nudenet
    spec = ModelSpec.model_validate({
        "onnx": str(path), "inputs": [{"name": "images", "shape": [1, 3, 320, 320]}],
        "preprocessing": NUDENET_PREPROCESSING,
        # these photos hold no people: a low threshold gives both sides boxes to agree on
        "task": {"type": "detection", "postprocess": {"kind": "yolov8", "score_threshold": 0.02}}})
    quantized = get_pass("int8-static-keep-float").run(
        Artifact("onnx", path, spec), {"calibration": str(photos), "samples": 2,
                                       "exclude_nodes": yolov8_head_nodes(path)}, tmp_path / "int8")
    assert quantized and quantized.artifact.path.stat().st_size < path.stat().st_size / 3
    result = compare_models(spec, "onnxruntime:cpu", "onnxruntime:cpu", target_model=quantized.artifact.path,
                            samples=2, data=str(photos), cache_dir=tmp_path / "cache", noise_floor_samples=0)
    task = result.to_dict()["task"]
    assert task["type"] == "detection" and task["count"] == 2
    assert task["reference_boxes"] > 0 and task["matched_boxes"] > 0
    assert 0.5 <= task["box_agreement"] <= 1.0 and task["mean_iou"] > 0.8
    assert task["verdict"] in ("pass", "warn", "fail") and "box agreement" in str(result)
