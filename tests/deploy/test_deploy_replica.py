"""Replica start-up choices that are not visible over HTTP."""

import numpy as np

from modelyard.deploy.replica import _intra_op_threads


def test_one_replica_leaves_onnxruntime_its_own_thread_default_and_several_share_the_cores():
    import psutil

    cores = psutil.cpu_count(logical=False) or 1
    assert _intra_op_threads(1) is None  # ORT's default pins its threads; an explicit count does not
    assert _intra_op_threads(2) == max(1, cores // 2)
    assert _intra_op_threads(64) == 1


def _convtranspose_same_upper(path):
    """A graph ONNX Runtime runs and the ONNX-on-torch kernels refuse when it first runs (ConvTranspose auto_pad)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.linspace(-1, 1, 1 * 2 * 3 * 3, dtype=np.float32).reshape(1, 2, 3, 3)
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER")], "up",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 8, 8])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_auto_falls_back_to_onnxruntime_when_the_preferred_backend_cannot_serve(tmp_path, monkeypatch, capsys):
    import pytest

    from modelyard.client import Client
    from modelyard.deploy import replica
    from modelyard.registry.versions import ModelRegistry
    from modelyard.runtime import targets as runtime_targets

    client = Client(home=tmp_path / "home")
    try:
        client.models.register(_convtranspose_same_upper(tmp_path / "up.onnx"), "up")
        version = ModelRegistry(client._workspace).get_version("up@1")
        config = {"replicas": 1, "traffic": [{"version_id": version.id, "weight": 100}],
                  "config": {"backend": "auto", "max_batch": 4, "max_wait_ms": 1.0, "instances": 1}}
        # as on a GPU machine where auto prefers torch kernels
        monkeypatch.setattr(runtime_targets, "auto_backend", lambda fmt, path=None: "torch:cpu")
        loaded = replica.load_versions(client._workspace, config)
        assert [v.backend for v in loaded] == ["onnxruntime:cpu"]
        assert "auto: up@1 cannot serve on torch:cpu" in capsys.readouterr().out
        config["config"]["backend"] = "torch:cpu"  # asked for by name: no fallback, the reason is the error
        with pytest.raises(RuntimeError, match="warm-up inference failed on torch:cpu.*auto_pad"):
            replica.load_versions(client._workspace, config)
    finally:
        client.close()


def test_only_an_automl_table_model_takes_missing_values(tmp_path):
    """null (NaN) is a missing value for a table model's numeric columns, which its pipeline imputes; any other
    model refuses it (issue 21 item 9)."""
    import onnx
    from deploy_models import linear_onnx

    from modelyard.deploy.replica import missing_value_inputs
    from modelyard.registry.signature import Signature, TensorSpec

    signature = Signature((TensorSpec("x", "float32", ("batch", 4)), TensorSpec("island", "string", ("batch", 1))),
                          (TensorSpec("y", "float32", ("batch", 3)),))
    plain = linear_onnx(tmp_path / "plain.onnx")
    assert missing_value_inputs(plain, signature) == frozenset()
    model = onnx.load(str(plain))
    entry = model.metadata_props.add()
    entry.key, entry.value = "modelyard.features", '{"numeric": ["x"]}'
    onnx.save(model, str(tmp_path / "table.onnx"))
    assert missing_value_inputs(tmp_path / "table.onnx", signature) == frozenset({"x"})
