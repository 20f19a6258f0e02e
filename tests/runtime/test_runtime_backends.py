"""One contract suite run against every available backend, plus availability reasons and precision hints."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.runtime.backend import LayerCall
from modelyard.runtime.feeds import random_feeds
from modelyard.runtime.registry import get_backend, list_backends

AVAILABLE = [s.name for s in list_backends() if s.available]
UNAVAILABLE = [s for s in list_backends() if not s.available]


def _artifact(name, mlp_spec, mlp_onnx):
    """The ModelSpec for torch, the ONNX export for the others; ``torch:<device>/onnx`` runs the ONNX on torch."""
    name, _, fmt = name.partition("/")
    backend = get_backend(name)
    return mlp_spec.source() if "torch" in backend.formats and fmt != "onnx" else mlp_onnx


@pytest.fixture(scope="module")
def reference(mlp_spec):
    runner = get_backend("torch:cpu").load(mlp_spec.source(), dtype="float64")
    return runner


@pytest.mark.parametrize("name", AVAILABLE + [f"{n}/onnx" for n in AVAILABLE if n.startswith("torch:")])
def test_backend_contract(name, mlp_spec, mlp_onnx, reference):
    """Every backend, the null one included: names, feeds checking, layers, profile hook, options, closing."""
    backend = get_backend(name.partition("/")[0])
    artifact = _artifact(name, mlp_spec, mlp_onnx)
    feeds = next(random_feeds(mlp_spec, 1, seed=3))
    with backend.load(artifact) as runner:
        assert runner.backend_name == name.partition("/")[0]
        assert isinstance(runner.options, backend.options_model)
        outputs = runner.infer(feeds)
        assert list(outputs) == ["logits"] and runner.output_names == ["logits"]
        assert outputs["logits"].shape[0] == 3
        assert runner.last_latency_s is not None and runner.last_latency_s >= 0
        assert runner.info.get("precision") == "fp32"

        with pytest.raises(InvalidInput, match="missing \\['x'\\]"):
            runner.infer({"y": feeds["x"]})
        with pytest.raises(InvalidInput, match="dim 1 must be 8"):
            runner.infer({"x": np.zeros((3, 7), dtype=np.float32)})
        with pytest.raises(InvalidInput, match="rank"):
            runner.infer({"x": np.zeros((3,), dtype=np.float32)})

        layers = [layer.name for layer in runner.layers()]
        assert layers and runner.intermediates(feeds, layers[:1])[layers[0]].shape[0] == 3
        profile = runner.profile(feeds, iterations=2)
        if profile is not None:
            assert profile.iterations == 2 and profile.by_op_type
            assert sum(row["share"] for row in profile.by_op_type) == pytest.approx(1.0, abs=0.01)
    runner.close()  # closing twice is harmless
    with pytest.raises(InvalidInput, match="unknown runtime option.*frobnicate"):
        backend.load(artifact, frobnicate=1)
    assert backend.check_options({"threads": None}).given() == {}  # None means "the engine's default"


@pytest.mark.parametrize("name", [n for n in AVAILABLE if not n.startswith("null:")]
                         + [f"{n}/onnx" for n in AVAILABLE if n.startswith("torch:")])
def test_engine_numerics_match_the_reference(name, mlp_spec, mlp_onnx, reference):
    """Real engines compute the model: outputs, layers and replays agree with the float64 torch reference."""
    feeds = next(random_feeds(mlp_spec, 1, seed=3))
    expected = reference.infer(feeds)["logits"]
    with get_backend(name.partition("/")[0]).load(_artifact(name, mlp_spec, mlp_onnx)) as runner:
        outputs = runner.infer(feeds)
        assert outputs["logits"].shape == (3, 5)
        np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-4, atol=1e-5)
        names = [layer.name for layer in runner.layers()]
        assert "0" in names and "2" in names, names  # Sequential children: Linear 0, Linear 2
        inter = runner.intermediates(feeds, ["0", "4"])
        assert inter["0"].shape == (3, 16)
        np.testing.assert_allclose(inter["4"], expected, rtol=1e-4, atol=1e-5)
        calls = reference.layer_calls(feeds, ["2"])
        replayed = runner.replay(feeds, calls)
        np.testing.assert_allclose(replayed["2"], reference.intermediates(feeds, ["2"])["2"], rtol=1e-4, atol=1e-5)


def test_unavailable_backends_say_why():
    assert any(s.name == "torch:cpu" and s.available for s in list_backends())
    for status in UNAVAILABLE:
        assert status.reason, status
        assert not status
    missing = [s.name for s in UNAVAILABLE if s.name.startswith(("torch:", "onnxruntime:", "openvino:"))]
    if missing:
        with pytest.raises(Unavailable, match=missing[0]):
            get_backend(missing[0]).load(None)


def test_auto_backend_picks_the_gpu_only_when_the_graph_runs_there(monkeypatch, mlp_onnx, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from modelyard.runtime import targets as registry
    from modelyard.runtime.torch_backend import TorchBackend

    assert registry.auto_backend("openvino") == "openvino:cpu"
    with pytest.raises(InvalidInput, match="served formats"):
        registry.auto_backend("torch")
    monkeypatch.setattr(registry, "_nvidia_driver_present", lambda: False)
    assert registry.auto_backend("onnx", mlp_onnx.path) == "onnxruntime:cpu"
    # a GPU box whose onnxruntime has no CUDA provider (the common case: onnxruntime, not onnxruntime-gpu)
    monkeypatch.setattr(registry, "_nvidia_driver_present", lambda: True)
    monkeypatch.setattr(TorchBackend, "_available_impl", lambda self: (True, ""))
    if not get_backend("onnxruntime:cuda").available()[0]:
        assert registry.auto_backend("onnx", mlp_onnx.path) == "torch:cuda"
        custom = tmp_path / "custom.onnx"
        graph = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                          helper.make_opsetid("com.example", 1)]), str(custom))
        assert registry.auto_backend("onnx", custom) == "onnxruntime:cpu"
    monkeypatch.undo()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert registry._nvidia_driver_present() is False


def test_unknown_backend_and_device():
    with pytest.raises(InvalidInput, match="unknown backend 'tensorflow'"):
        get_backend("tensorflow:cpu")
    with pytest.raises(InvalidInput, match="unknown device 'tpu'"):
        get_backend("torch:tpu")


def test_backend_rejects_wrong_format(mlp_spec):
    with pytest.raises(InvalidInput, match="cannot run a torch model"):
        get_backend("onnxruntime:cpu").load(mlp_spec.source())


@pytest.mark.gpu
def test_torch_cuda_reference_path(mlp_spec):
    ok, why = get_backend("torch:cuda").available()
    if not ok:
        pytest.skip(f"torch:cuda unavailable: {why}")
    runner = get_backend("torch:cuda").load(mlp_spec.source())
    feeds = next(random_feeds(mlp_spec, 1))
    cpu = get_backend("torch:cpu").load(mlp_spec.source()).infer(feeds)["logits"]
    np.testing.assert_allclose(runner.infer(feeds)["logits"], cpu, rtol=1e-4, atol=1e-5)
    assert runner.info["allow_tf32"] is False


def test_openvino_precision_hint_is_explicit_and_recorded(mlp_spec, mlp_ir):
    if "openvino:cpu" not in AVAILABLE:
        pytest.skip("openvino:cpu unavailable")
    runner = get_backend("openvino:cpu").load(mlp_ir)
    assert runner.info["inference_precision_hint"] == "f32"
    assert runner.info["compiled_inference_precision"] in ("f32", "float32")
    assert [layer.name for layer in runner.layers()][:1] == ["0"]  # layer map read from the sidecar
    bf16 = get_backend("openvino:cpu").load(mlp_ir, precision="bf16")
    assert bf16.info["inference_precision_hint"] == "bf16"
    with pytest.raises(InvalidInput, match="precision"):
        get_backend("openvino:cpu").load(mlp_ir, precision="int4")


def test_corrupt_onnx_is_one_clear_error(tmp_path, mlp_spec):
    from modelyard.runtime.spec import artifact_from_path

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    with pytest.raises(InvalidInput, match="broken.onnx"):
        get_backend("onnxruntime:cpu").load(artifact_from_path(bad, mlp_spec))


def test_layer_call_flattens_arrays():
    a, b = np.zeros(2), np.ones(3)
    call = LayerCall([a, (b, "x")], {"mask": a})
    assert [x.shape for x in call.arrays()] == [(2,), (3,), (2,)]


def test_onnxruntime_spinning_is_a_load_option(mlp_onnx):
    from modelyard.runtime.onnxruntime_backend import OnnxRuntimeOptions, session_options

    quiet = session_options(OnnxRuntimeOptions(spinning=False))
    assert quiet.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert quiet.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert session_options(OnnxRuntimeOptions(spinning=True)).get_session_config_entry(
        "session.intra_op.allow_spinning") == "1"
    runner = get_backend("onnxruntime:cpu").load(mlp_onnx, spinning=False)
    assert runner.info["session_options"] == {"spinning": False}  # recorded beside the run's figures
