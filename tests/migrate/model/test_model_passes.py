"""Pass contract: every registered pass runs on a fitting input, its output is verified to load and run, a second
run comes from the cache, configs are validated; the convert chains end in the asked format."""

from __future__ import annotations

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.passes import PASSES, TARGETS, convert, get_pass, plan
from modelyard.runtime.graph_layers import load_layer_map

# pass -> the target format whose chain feeds it (its input is the previous step's output)
CHAIN_FOR = {
    "torch-to-onnx": "onnx",
    "onnx-simplify": "onnx-simplified",
    "onnx-fp16": "onnx-fp16",
    "int8-dynamic": "onnx-int8",
    "int8-static": "onnx-int8-static",
    "onnx-to-openvino": "openvino",
    "openvino-bf16-hint": "openvino-bf16",
    "nncf-int8": "openvino-int8",
    "torch-export": "torch-export",
}
# passes no target chain uses (the optimiser's keep-float fallbacks): run on the fp32 ONNX model with this config
DIRECT = {
    "int8-static-keep-float": {"exclude_op_types": ["Gemm"]},
    "nncf-int8-keep-float": {"exclude_op_types": ["Gemm"]},
}


def test_every_pass_is_covered():
    assert set(CHAIN_FOR) | set(DIRECT) == set(PASSES)
    assert not set(CHAIN_FOR) & set(DIRECT)
    assert set(CHAIN_FOR.values()) <= set(TARGETS)


SLOW_PASSES = {"nncf-int8"}  # NNCF's calibration takes seconds even on the tiny CNN


@pytest.mark.parametrize("pass_name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_PASSES else name
                                       for name in sorted(PASSES)])
def test_pass_contract(pass_name, cnn_spec, cnn_onnx, model_dir, model_cache):
    out = model_dir / "passes" / pass_name
    if pass_name in DIRECT:
        result, source = None, cnn_onnx
        step = get_pass(pass_name).run(source, DIRECT[pass_name], out, model_cache)
        assert "1 nodes kept in float" in step.notes, "the tiny CNN's head (one Gemm) stays in float"
    else:
        result = convert(cnn_spec, CHAIN_FOR[pass_name], out_dir=out, cache_dir=model_cache)
        step = next(s for s in result.steps if s.pass_name == pass_name)
        source = _input_of(result, pass_name, cnn_spec)
        assert bool(result)
    assert step.verification["ok"] and step.artifact.path.is_file()
    assert step.artifact.path.parent == out
    assert step.verification["outputs"]["logits"] == [2, 10]
    assert bool(step)
    again = get_pass(pass_name).run(source, step.config, out, model_cache)
    assert again.cached and again.cache_key == step.cache_key
    assert again.artifact.path.read_bytes() == step.artifact.path.read_bytes()
    if step.artifact.format in ("onnx", "openvino") and not pass_name.startswith("nncf-int8"):
        assert load_layer_map(step.artifact.path), "the layer map travels with the artifact"
    if result is not None:
        data = result.to_dict()
        assert data["schema"] == "modelyard.convert/1" and data["steps"][-1]["output"]["path"]


def _input_of(result, pass_name, spec):
    index = [s.pass_name for s in result.steps].index(pass_name)
    return spec.source() if index == 0 else result.steps[index - 1].artifact


def test_config_and_format_are_validated(cnn_spec, cnn_onnx, tmp_path):
    with pytest.raises(InvalidInput, match="config.opset"):
        get_pass("torch-to-onnx").run(cnn_spec.source(), {"opset": 2}, tmp_path)
    with pytest.raises(InvalidInput, match="takes onnx models, got torch"):
        get_pass("onnx-fp16").run(cnn_spec.source(), None, tmp_path)
    with pytest.raises(InvalidInput, match="unknown target format"):
        plan(cnn_spec, "tflite")
    with pytest.raises(InvalidInput, match="unknown pass"):
        get_pass("magic")


def test_config_changes_the_cache_key(cnn_spec, cnn_onnx):
    fp16 = get_pass("onnx-fp16")
    a = fp16.cache_key(cnn_onnx, fp16.validate_config({}))
    b = fp16.cache_key(cnn_onnx, fp16.validate_config({"keep_io_types": False}))
    assert a != b


def _calibration(folder, spec, seed: int):
    import numpy as np

    from modelyard.runtime.feeds import random_feeds

    folder.mkdir(parents=True)
    feeds = list(random_feeds(spec, 4, seed=seed))
    np.savez(folder / "calib.npz", **{name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]})
    return str(folder / "calib.npz")


def test_the_pass_cache_keys_on_the_configs_content_hash_and_the_inputs_digest(cnn_spec, cnn_onnx, tmp_path):
    """Same config: hit; a field that matters (samples) or other calibration data: miss; the same calibration data
    in another folder (where it lies is not the config's content): hit."""
    import shutil

    int8 = get_pass("int8-static")
    here = _calibration(tmp_path / "calib", cnn_spec, seed=3)
    (tmp_path / "elsewhere").mkdir()
    moved = shutil.copy2(here, tmp_path / "elsewhere" / "calib.npz")
    other = _calibration(tmp_path / "other", cnn_spec, seed=4)
    config = int8.validate_config({"calibration": here, "samples": 4})
    key = int8.cache_key(cnn_onnx, config)
    assert key == config.cache_key("int8-static", cnn_onnx.content_hash(), int8._cache_extra(cnn_onnx, config))
    assert int8.cache_key(cnn_onnx, int8.validate_config({"calibration": here, "samples": 4})) == key
    assert int8.cache_key(cnn_onnx, int8.validate_config({"calibration": str(moved), "samples": 4})) == key
    assert int8.cache_key(cnn_onnx, int8.validate_config({"calibration": here, "samples": 3})) != key
    assert int8.cache_key(cnn_onnx, int8.validate_config({"calibration": other, "samples": 4})) != key
    cache = tmp_path / "cache"
    first = int8.run(cnn_onnx, config, tmp_path / "a", cache)
    again = int8.run(cnn_onnx, {"calibration": str(moved), "samples": 4}, tmp_path / "b", cache)
    assert not first.cached and again.cached and again.cache_key == first.cache_key
    assert not int8.run(cnn_onnx, {"calibration": other, "samples": 4}, tmp_path / "c", cache).cached


@pytest.mark.slow
def test_real_architecture_exports_with_dynamic_axes(resnet_onnx):
    import onnx

    model = onnx.load(str(resnet_onnx.path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[2].dim_value == 32
    assert [o.name for o in model.graph.output] == ["logits"]
