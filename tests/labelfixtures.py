"""Tiny labeling data, built in milliseconds: colour images in class folders and a colour classifier (ONNX) whose
answer is known, so proposals, Label Studio predictions and review flows can be checked exactly.

Not a conftest.py (a second conftest module would shadow tests/conftest.py for ``from conftest import``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def colour_png(colour: str, size: tuple[int, int] = (16, 24), seed: int = 0) -> bytes:
    """A ``height x width`` PNG of one colour with a little noise."""
    import io

    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(COLOURS[colour], np.int16) + rng.integers(-20, 20, (*size, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def colour_folder(dest: Path, per_class: int = 4) -> Path:
    """``dest/<colour>/<i>.png`` for red, green and blue."""
    for colour in COLOURS:
        (dest / colour).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            (dest / colour / f"{index}.png").write_bytes(colour_png(colour, seed=index))
    return dest


def colour_classifier(path: Path) -> Path:
    """``softmax(20 * channel means)`` of an image ``[batch, 3, 8, 8]`` in 0..1: red, green or blue by colour."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["mean"]),
         helper.make_node("Mul", ["mean", "gain"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)], "colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(np.array(20.0, np.float32), "gain")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def register_colour_classifier(workspace, folder: Path, name: str = "colours"):
    """Register :func:`colour_classifier` with its preprocessing and class names; returns the version."""
    from modelyard.registry.versions import ModelRegistry

    path = colour_classifier(folder / "colours.onnx")
    digest = "sha256:" + workspace.blobs.put_file(path).digest
    return ModelRegistry(workspace).create_version(
        name, {"model.onnx": digest}, "model.onnx", "onnx",
        preprocessing={"size": [8, 8], "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]},
        task={"type": "classification", "classes": list(COLOURS)})
