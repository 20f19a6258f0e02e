"""Tiny models for the registry tests, built with onnx.helper (milliseconds, no torch). Test modules import the
fixtures from here: a conftest.py in a sub-folder would shadow the root one for ``from conftest import ...``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WEIGHT = np.arange(12, dtype=np.float32).reshape(4, 3) / 10.0
BIAS = np.array([0.5, -0.5, 1.0], dtype=np.float32)


def linear_onnx(path: Path, weight: np.ndarray = WEIGHT, bias: np.ndarray = BIAS) -> Path:
    """``y = x @ W + b`` on ``x [batch, 4] float32``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def linear_weights() -> tuple[np.ndarray, np.ndarray]:
    return WEIGHT, BIAS


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("registry-models")
    linear_onnx(folder / "linear.onnx")
    linear_onnx(folder / "linear2.onnx", WEIGHT * 2, BIAS)
    return folder
