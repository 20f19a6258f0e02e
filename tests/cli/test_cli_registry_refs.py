"""Anywhere a ModelSpec is accepted, ``modelyard://NAME@VERSION|ALIAS`` works too."""

import json

import numpy as np
import pytest

from support import run_cli


def _linear_onnx(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weights, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.slow
def test_migrate_commands_take_registry_references(tmp_path):
    home = tmp_path / "w"
    _linear_onnx(tmp_path / "linear.onnx")
    from modelyard.client import Client

    with Client(home=home) as client:  # set-up through the SDK (test_cli_models runs register and alias)
        client.models.register(tmp_path / "linear.onnx", "linear")
        client.models.alias("linear@1", "production")
    compared = run_cli("migrate", "compare", "modelyard://linear@production", "--ref", "onnxruntime:cpu",
                       "--target", "openvino:cpu", "--samples", "2", "--json", home=home, check=True)
    result = json.loads(compared.stdout)
    assert result["schema"] == "modelyard.compare/1" and result["verdict"] == "pass"
    coverage = run_cli("migrate", "coverage", "modelyard://linear@1", "--target", "openvino:cpu", "--json",
                       home=home, check=True)
    assert json.loads(coverage.stdout)["coverage"] == 1.0
    missing = run_cli("migrate", "compare", "modelyard://nope@1", "--target", "openvino:cpu", home=home)
    assert missing.returncode == 1 and "model 'nope' not found" in missing.stderr
