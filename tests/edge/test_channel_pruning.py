"""Structured channel pruning: the weakest output channels of a Conv leave the graph (with their bias, their
BatchNormalization parameters and the next Conv's input slices), the model shrinks and computes the same where those
channels carried nothing; a Conv whose output is read twice is left alone. Packaging keeps it through the gate."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard.core.settings import Settings
from modelyard.edge.bundles import Bundles
from modelyard.edge.channel_pruning import structured_prune
from modelyard.registry.versions import ModelRegistry
from modelyard.store.workspace import Workspace


def conv_bn_conv(path, second_reader: bool = False):
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w1[[0, 2]], b1[[0, 2]] = 1e-6, 0.0  # two dead filters: what the L1 ranking must find
    bn = {"scale": rng.uniform(0.5, 1.5, 8), "bias": np.zeros(8), "mean": np.zeros(8), "var": np.ones(8)}
    w2 = rng.normal(0, 0.2, (4, 8, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c1", "scale", "bias", "mean", "var"], ["n1"]),
             helper.make_node("Relu", ["n1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c2"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])]
    if second_reader:
        nodes.append(helper.make_node("Identity", ["c1"], ["side"]))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, None))
    inits = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in
             {"w1": w1, "b1": b1, **bn, "w2": w2}.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]


def test_dead_channels_leave_the_graph_and_the_output_stays(tmp_path):
    source = conv_bn_conv(tmp_path / "m.onnx")
    result = structured_prune(source, tmp_path / "slim.onnx", 0.25)
    assert result == {"layers": 1, "channels_removed": 2, "channels_before": 8}
    slim = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "slim.onnx")).graph.initializer}
    assert slim["w1"].shape == (6, 3, 3, 3) and slim["b1"].shape == (6,) and slim["w2"].shape == (4, 6, 3, 3)
    assert all(slim[k].shape == (6,) for k in ("scale", "bias", "mean", "var"))
    assert (tmp_path / "slim.onnx").stat().st_size < source.stat().st_size
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(tmp_path / "slim.onnx", x), _run(source, x), atol=1e-4)

    shared = conv_bn_conv(tmp_path / "shared.onnx", second_reader=True)
    assert structured_prune(shared, tmp_path / "shared-slim.onnx", 0.25)["layers"] == 0


def test_packaging_keeps_channel_pruning_through_the_gate(tmp_path):
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        blob = workspace.blobs.put_file(conv_bn_conv(tmp_path / "m.onnx"))
        ModelRegistry(workspace).create_version("cnn", {"model.onnx": "sha256:" + blob.digest}, "model.onnx", "onnx")
        bundle = Bundles(workspace).package("cnn@1", "cpu-x86", int8=False)
    finally:
        workspace.close()
    figures = bundle["figures"]
    step = next(s for s in figures["steps"] if s["step"] == "prune-channels")
    assert step["accepted"] and step["channels_removed"] == 2
    assert "prune-channels" in figures["applied"]
    assert figures["final"]["size_bytes"] < figures["float"]["size_bytes"]


def small_classifier(path):
    """``image (batch, 3, 16, 16)`` -> Conv 3->8 -> Relu -> Conv 8->4 -> Relu -> mean -> Gemm 4->2 -> Softmax."""
    rng = np.random.default_rng(2)
    inits = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)), "w2": rng.normal(0, 0.3, (4, 8, 3, 3)),
             "w3": rng.normal(0, 0.5, (4, 2)), "b3": np.zeros(2)}
    nodes = [helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.slow  # torch, a dataset import and two gated packaging steps
def test_a_classifier_from_its_own_training_data_is_fine_tuned_after_channel_pruning(tmp_path):
    from PIL import Image

    from modelyard.data.datasets import DatasetStore

    rng = np.random.default_rng(3)
    for label, level in (("dark", 40), ("bright", 200)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for index in range(8):
            pixels = np.clip(rng.normal(level, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{index}.png")
    workspace = Workspace.open(Settings.load(tmp_path / "home"))
    try:
        data = DatasetStore(workspace).import_path(tmp_path / "images", "shades")
        blob = workspace.blobs.put_file(small_classifier(tmp_path / "cnn.onnx"))
        ModelRegistry(workspace).create_version("cnn", {"model.onnx": "sha256:" + blob.digest}, "model.onnx",
                                                "torch", tags={"classes": "dark,bright"},
                                                lineage={"dataset": data.ref})
        bundle = Bundles(workspace).package("cnn@1", "cpu-x86", int8=False, max_accuracy_drop=1.0)
    finally:
        workspace.close()
    step = next(s for s in bundle["figures"]["steps"] if s["step"] == "prune-channels")
    assert step["layers"] == 1 and step["channels_removed"] == 2  # Conv 3->8 lost 2 of its 8 channels
    tuned = step["fine_tuned"]
    assert tuned["samples"] == 16 and tuned["steps"] > 0
    assert tuned["loss_after"] < tuned["loss_before"]  # the labels of the training data were learned from
    assert bundle["figures"]["samples_from"] == {"dataset": "shades@1", "kind": "image-classification",
                                                 "samples": 16}
