"""Code-free skills: a detector plus a rule template, published to the market and run by the host."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.edge.skills.manifest import load_logic, load_manifest
from modelyard.edge.skills.market import publish_template, skill_dir


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    from modelyard.edge.skills.media import write_tiny_detector

    return write_tiny_detector(tmp_path_factory.mktemp("det") / "det.onnx", size=64, width=4)


def _logic(home, name):
    folder = skill_dir(home, name)
    logic = load_logic(folder, load_manifest(folder))
    logic.setup({})
    return logic


def _inference(centres, classes=None):
    centres = np.asarray(centres, dtype=np.float32).reshape(-1, 2)
    boxes = np.concatenate([centres - 0.01, centres + 0.01], axis=1)
    return {"boxes": boxes, "scores": np.full(len(centres), 0.9, np.float32),
            "classes": np.asarray(classes if classes is not None else [0] * len(centres), np.float32)}


def test_each_template_publishes_a_runnable_skill_with_rules_per_channel(tmp_path, detector):
    for template in ("zone-count", "line-crossing", "class-seen"):
        info = publish_template(tmp_path, template, f"t-{template}", detector, model_ref="det@1", input_size=(64, 64))
        assert info["models"][0]["registry"] == "det@1" and len(info["models"][0]["sha256"]) == 64
    zone = _logic(tmp_path, "t-zone-count")
    assert zone.self_check()["ok"]
    channel = {"id": "a", "config": {"zone": [0, 0, 0.5, 0.5]}}
    assert zone.process({"inference": _inference([[0.2, 0.2], [0.8, 0.8]])}, channel) == [
        {"rule": "zone-count", "count": 1}]
    assert zone.process({"inference": _inference([[0.3, 0.3], [0.9, 0.9]])}, channel) == []  # unchanged
    line = _logic(tmp_path, "t-line-crossing")
    channel = {"id": "a", "config": {"line": [0.5, 0, 0.5, 1]}}
    assert line.process({"inference": _inference([[0.45, 0.5]])}, channel) == []
    assert line.process({"inference": _inference([[0.55, 0.5]])}, channel) == [
        {"rule": "line-crossing", "crossed": 1, "total": 1}]
    seen = _logic(tmp_path, "t-class-seen")
    channel = {"id": "a", "config": {"class_id": 2, "frames": 2}}
    events = [seen.process({"inference": _inference([[0.5, 0.5]], [2])}, channel) for _ in range(3)]
    assert events == [[], [{"rule": "class-seen", "class_id": 2, "frames": 2}], []]
    frame_events = zone.process({"frame": np.zeros((48, 64, 3), np.uint8)}, {"id": "b", "config": {}})
    assert isinstance(frame_events, list)  # real inference on a frame goes through


def _mean_colour_classifier(path):
    """[N, 3, H, W] -> logits [N, 3] = 10 * the mean of each colour channel: a red frame is class 0, green 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Mul", ["flat", "ten"], ["logits"])]
    graph = helper.make_graph(nodes, "colour", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                                                                ["batch", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
                              initializer=[numpy_helper.from_array(np.array(10, np.float32), "ten")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_classifier_template_alarms_when_a_class_is_seen_for_n_frames(tmp_path):
    from modelyard.edge.skills.filters import is_hard

    model = _mean_colour_classifier(tmp_path / "colour.onnx")
    info = publish_template(tmp_path, "classifier-seen", "red-alarm", model, model_ref="colour@1", input_size=(16, 16))
    assert info["models"][0]["name"] == "classifier"
    logic = _logic(tmp_path, "red-alarm")
    assert logic.self_check() == {"ok": True, "classes": 3}
    red, green = np.zeros((24, 32, 3), np.uint8), np.zeros((24, 32, 3), np.uint8)
    red[..., 0], green[..., 1] = 255, 255
    channel = {"id": "door", "config": {"class_id": 0, "frames": 2, "min_score": 0.9}}
    inferences = logic.infer_batch([red, red, green, red, red, red])
    assert inferences[0]["probabilities"].argmax() == 0 and inferences[2]["probabilities"].argmax() == 1
    events = [logic.process({"inference": i}, channel) for i in inferences]
    assert [len(e) for e in events] == [0, 1, 0, 0, 1, 0]  # once per streak of two red frames
    assert events[1][0]["rule"] == "classifier-seen" and events[1][0]["probability"] > 0.99
    grey = logic.infer_batch([np.full((24, 32, 3), 128, np.uint8)])[0]  # equal logits: the model cannot tell
    assert is_hard({"filter": "cross_entropy", "threshold": 0.5}, grey)[0]
    with pytest.raises(InvalidInput, match="one \\[N, 3, H, W\\] image input"):
        publish_template(tmp_path, "classifier-seen", "det-as-classifier", _detector_for_errors(tmp_path),
                         model_ref="det@1")


def _detector_for_errors(tmp_path):
    from modelyard.edge.skills.media import write_tiny_detector

    return write_tiny_detector(tmp_path / "d.onnx", size=32, width=2)


def test_template_errors(tmp_path, detector):
    with pytest.raises(InvalidInput, match="unknown template"):
        publish_template(tmp_path, "teleport", "x", detector, model_ref="det@1")
    with pytest.raises(InvalidInput, match="needs an ONNX detector"):
        publish_template(tmp_path, "zone-count", "x", tmp_path / "model.xml", model_ref="det@1")


def test_publish_a_template_skill_from_a_registered_model_over_rest(client, detector):
    from modelyard.core.errors import NotFound

    version = client.models.register(detector, "tiny-det")
    ref = f"tiny-det@{version['version']}" if isinstance(version, dict) and "version" in version else "tiny-det@1"
    info = client.skills.publish_template("zone-count", "yard-zone", ref, input_size=(64, 64))
    assert info["name"] == "yard-zone" and info["models"][0]["registry"] == ref
    assert "yard-zone" in {row["name"] for row in client.skills.list()}
    with pytest.raises(NotFound):
        client.skills.publish_template("zone-count", "other", "nope@1")
