"""The device -> backends policy that coverage, compare, optimise and deploy share."""

from __future__ import annotations

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.runtime import targets
from modelyard.runtime.registry import get_backend


def test_every_backend_the_policy_names_exists():
    for device, row in targets.DEVICES.items():
        for name in (*row.backends, row.check, row.coverage):
            if name != "npu":  # the NPU knowledge file, not a backend
                assert get_backend(name).device == name.partition(":")[2], (device, name)
        assert row.check in row.backends or row.check.startswith("onnxruntime:"), device
    for fmt, name in targets.FORMAT_DEFAULTS.items():
        assert fmt in get_backend(name).formats


def test_each_question_answered_from_the_device_row(monkeypatch):
    assert targets.backends_for("cpu") == ("openvino:cpu", "onnxruntime:cpu")
    assert targets.backends_for("openvino:gpu") == ("openvino:gpu",)
    assert targets.coverage_target("cpu") == "openvino:cpu" and targets.coverage_target("npu") == "npu"
    assert targets.coverage_target("onnxruntime:cuda") == "onnxruntime:cuda"
    assert targets.check_backend("cpu") == ("onnxruntime:cpu", None)
    name, note = targets.check_backend("npu")  # no CANN provider on a test machine
    if not get_backend("onnxruntime:cann").available()[0]:
        assert name == targets.PORTABLE and "onnxruntime:cann is not available" in note
    assert targets.default_backend("torch", "cuda") == "torch:cuda"
    assert targets.default_backend("onnx", "cuda") == "onnxruntime:cpu"
    assert targets.device_of("onnxruntime:cuda") == "cuda" and targets.device_of("openvino") == "cpu"
    with pytest.raises(InvalidInput, match="use a device"):
        targets.backends_for("tpu")
    with pytest.raises(InvalidInput, match="no backend runs"):
        targets.default_backend("tflite")
