"""Tiny ONNX models (onnx.helper, milliseconds) and a module-scoped platform: a workspace with them registered,
whose service supervisor is stopped at the end. Test modules import the fixtures from here: a conftest.py in a
sub-folder would shadow the root one for ``from conftest import ...``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from support import DETECTOR_PREPROCESSING, DETECTOR_TASK, detector_onnx, stop_supervisor  # noqa: F401 - re-exported for tests

WEIGHT = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
BIAS = np.array([0.5, -0.5, 1.0], dtype=np.float32)


def _save(graph, path: Path, extra_opsets=()) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), *extra_opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def linear_onnx(path: Path, scale: float = 1.0) -> Path:
    """``y = x @ (scale * W) + b`` on ``x [batch, 4] float32``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(WEIGHT * scale, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    return _save(graph, path)


def broken_onnx(path: Path) -> Path:
    """Same signature as ``linear``, passes the ONNX checker, but no runtime has its custom op: cannot load."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example.missing")], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    return _save(graph, path, [helper.make_opsetid("com.example.missing", 1)])


def image_onnx(path: Path) -> Path:
    """Per-channel mean of an image ``[batch, 3, 8, 8]`` -> ``[batch, 3]``."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["mean"])], "image",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["batch", 3])],
    )
    return _save(graph, path)


TABULAR_ISLANDS = ["Biscoe", "Dream", "Torgersen"]
TABULAR_CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def tabular_onnx(path: Path) -> Path:
    """A table classifier shaped like AutoML's exports: one ``[batch, 1]`` input per column, ``island`` text and
    ``bill_length_mm`` float; ``probabilities [batch, 3]`` (softmax of [island index, bill / 10] @ W) and ``label``
    (the argmax). An unknown island maps to index -1."""
    from onnx import TensorProto, helper, numpy_helper

    weight = np.array([[1.0, -1.0, 0.0], [0.0, 0.5, -0.5]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("CategoryMapper", ["island"], ["island_index"], domain="ai.onnx.ml",
                          cats_strings=TABULAR_ISLANDS, cats_int64s=[0, 1, 2], default_int64=-1),
         helper.make_node("Cast", ["island_index"], ["island_float"], to=TensorProto.FLOAT),
         helper.make_node("Div", ["bill_length_mm", "ten"], ["bill_scaled"]),
         helper.make_node("Concat", ["island_float", "bill_scaled"], ["features"], axis=1),
         helper.make_node("MatMul", ["features", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
         helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0)], "tabular",
        [helper.make_tensor_value_info("island", TensorProto.STRING, [None, 1]),
         helper.make_tensor_value_info("bill_length_mm", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.array(10.0, np.float32), "ten")],
    )
    return _save(graph, path, [helper.make_opsetid("ai.onnx.ml", 3)])


def expected_tabular(islands: list[str], bills: list[float]) -> np.ndarray:
    """The probabilities ``tabular_onnx`` answers."""
    index = np.array([TABULAR_ISLANDS.index(i) if i in TABULAR_ISLANDS else -1 for i in islands], np.float32)
    logits = np.stack([index, np.asarray(bills, np.float32) / 10], axis=1) @ np.array(
        [[1.0, -1.0, 0.0], [0.0, 0.5, -0.5]], np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def expected_linear(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return x @ (WEIGHT * scale) + BIAS


@pytest.fixture(scope="session")
def deploy_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deploy-models")
    linear_onnx(folder / "linear.onnx")
    linear_onnx(folder / "linear2.onnx", scale=2.0)
    broken_onnx(folder / "broken.onnx")
    image_onnx(folder / "image.onnx")
    tabular_onnx(folder / "tabular.onnx")
    detector_onnx(folder / "detector.onnx")
    return folder


@dataclass
class Platform:
    client: object
    home: Path
    token: str

    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory, deploy_models):
    """A workspace with ``linear`` versions 1 (W) and 2 (2W), ``broken`` and ``image`` registered."""
    from modelyard.client import Client
    from modelyard.store.tokens import TokenStore

    home = tmp_path_factory.mktemp("platform") / "home"
    client = Client(home=home)
    client.models.register(deploy_models / "linear.onnx", "linear")
    client.models.register(deploy_models / "linear2.onnx", "linear")
    client.models.register(deploy_models / "broken.onnx", "linear")  # linear@3 cannot load
    client.models.register(deploy_models / "image.onnx", "image",
                           preprocessing={"size": [8, 8], "scale": 1.0, "mean": [0, 0, 0], "std": [1, 1, 1]})
    _, token = TokenStore(client._workspace.engine).create("predictor", "viewer")
    yield Platform(client, home, token)
    problems = stop_supervisor(home)
    client.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def linear_expected():
    """``expected(x, scale)``: what linear@1 (scale 1) and linear@2 (scale 2) answer."""
    return expected_linear
