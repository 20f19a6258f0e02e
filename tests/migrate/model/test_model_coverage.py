"""Operator coverage on OpenVINO (query_model), ONNX Runtime (node placement) and the NPU knowledge file."""

from __future__ import annotations

import pytest
import yaml

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.migrate.model.coverage import KNOWLEDGE, op_coverage


def test_openvino_and_onnxruntime_cover_a_plain_cnn(cnn_spec, cnn_onnx, model_cache):
    for target in ("openvino:cpu", "onnxruntime:cpu"):
        result = op_coverage(cnn_spec, target, cache_dir=model_cache)
        data = result.to_dict()
        assert data["schema"] == "modelyard.coverage/1"
        assert data["coverage"] == 1.0 and data["fallback"] == [] and bool(result)
        assert data["dynamic"]["inputs"] == {"x": ["batch", 3, 16, 16]}
        assert {op["op"] for op in data["ops"]} & {"Conv", "Convolution"}


@pytest.mark.slow
def test_npu_knowledge_reports_fallbacks(bert_spec, bert_onnx, model_cache):
    result = op_coverage(bert_spec, "npu", cache_dir=model_cache)
    data = result.to_dict()
    assert 0.5 < data["coverage"] < 1.0
    fallback = {f["op"]: f for f in data["fallback"]}
    assert "IsNaN" in fallback and fallback["IsNaN"]["runs_on"] == "AI CPU"
    assert data["dynamic"]["inputs"]["input_ids"] == ["batch", "seq"]
    assert "Range" in data["dynamic"]["data_dependent_ops"]


@pytest.mark.slow
def test_torch_coverage_names_ops_without_a_torch_kernel(bert_spec, bert_onnx, model_cache, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    data = op_coverage(bert_spec, "torch:cuda", cache_dir=model_cache).to_dict()
    assert data["target"] == "torch:cuda" and data["coverage"] == 1.0 and data["fallback"] == []
    assert {op["runs_on"] for op in data["ops"]} == {"torch:cuda"}
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Frobnicate", ["r"], ["y"], domain="com.example")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    custom = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.example", 1)]), str(custom))
    result = op_coverage(bert_spec, "torch", model_path=custom).to_dict()
    assert result["coverage"] == 0.5
    assert [(f["op"], f["status"]) for f in result["fallback"]] == [("com.example::Frobnicate", "unsupported")]
    with pytest.raises(InvalidInput, match="unknown device 'tpu'"):
        op_coverage(bert_spec, "torch:tpu", model_path=custom)


def test_knowledge_file_is_consistent():
    data = yaml.safe_load(KNOWLEDGE.read_text())
    groups = [set(data["onnx"][k]) for k in ("native", "aicpu", "unsupported")]
    assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    assert set(data["onnx"]["notes"]) <= set().union(*groups)


def test_unknown_and_unavailable_targets(cnn_spec, cnn_onnx, model_cache):
    with pytest.raises(InvalidInput, match="unknown coverage target"):
        op_coverage(cnn_spec, "tpu", cache_dir=model_cache)
    from modelyard.runtime.registry import get_backend

    if get_backend("onnxruntime:cann").available()[0]:
        pytest.skip("this machine has the CANN execution provider")
    with pytest.raises(Unavailable, match="CANNExecutionProvider"):
        op_coverage(cnn_spec, "onnxruntime:cann", cache_dir=model_cache)
