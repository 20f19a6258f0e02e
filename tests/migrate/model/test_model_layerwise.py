"""Layer-wise compare: a perturbed layer is found as the first divergence, `local`, and later layers are
`accumulated`; module paths of a real architecture show up; dumps stream to disk."""

from __future__ import annotations

import ast

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from modelyard.migrate.model.compare import compare_models


def _scope(node) -> str | None:
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            return ast.literal_eval(prop.value)[-2]
    return None


def _perturb(model_path, out_path, module: str, factor: float = 1.5):
    """Scale the weight initializer of the node belonging to ``module`` (what a broken kernel would do)."""
    model = onnx.load(str(model_path))
    inits = {t.name: t for t in model.graph.initializer}
    node = next(n for n in model.graph.node if _scope(n) == module and any(i in inits for i in n.input))
    weight = next(inits[i] for i in node.input if i in inits and len(numpy_helper.to_array(inits[i]).shape) >= 2)
    array = numpy_helper.to_array(weight) * factor
    weight.CopyFrom(numpy_helper.from_array(array.astype(np.float32), weight.name))
    onnx.save(model, str(out_path))
    return out_path


def _check_perturbed(result, layer: str):
    names = [row["name"] for row in result.layers]
    assert layer in names, names
    fd = result.first_divergence
    assert fd is not None and fd["name"] == layer, (fd, names)
    assert fd["kind"] == "local" and fd["kind_method"] == "replay"
    index = names.index(layer)
    assert all(row["verdict"] == "pass" for row in result.layers[:index])
    later = [row for row in result.layers[index + 1:] if row["verdict"] != "pass"]
    assert later, "the perturbation should propagate"
    assert all(row["kind"] == "accumulated" for row in later), [(r["name"], r["kind"]) for r in later]
    return result


def test_perturbed_conv_is_the_first_local_divergence(cnn_spec, cnn_onnx, model_cache, tmp_path):
    target = _perturb(cnn_onnx.path, tmp_path / "perturbed.onnx", "stage1.0")
    dumps = tmp_path / "dumps"
    result = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=target, samples=3,
                            layerwise=True, dump_dir=dumps, cache_dir=model_cache)
    _check_perturbed(result, "stage1.0")
    assert result.verdict == "fail"
    data = result.to_dict()
    row = data["layers"][0]
    assert {"index", "name", "target_name", "max_abs_err", "cosine", "local_max_abs_err", "verdict"} <= set(row)
    assert data["first_divergence"]["target_name"] == "conv2d_1"
    # dumps: one file per layer, side and sample, plus an index
    assert (dumps / "index.json").is_file()
    files = sorted((dumps / "target" / "sample_0002").glob("*.npy"))
    assert len(files) == len(result.layers)
    assert data["layerwise"]["compared"] == len(result.layers) and data["layerwise"]["local"] == 1


@pytest.mark.slow
def test_perturbed_attention_query_in_bert(bert_spec, bert_onnx, model_cache, tmp_path):
    layer = "bert.encoder.layer.1.attention.self.query"
    target = _perturb(bert_onnx.path, tmp_path / "bert-perturbed.onnx", layer, factor=3.0)
    result = compare_models(bert_spec, "torch:cpu", "onnxruntime:cpu", target_model=target, samples=2,
                            layerwise=True, cache_dir=model_cache)
    _check_perturbed(result, layer)
    names = [row["name"] for row in result.layers]
    assert "bert.encoder.layer.0.attention.output.dense" in names


@pytest.mark.slow
def test_clean_export_has_no_divergence_and_coarser_depth(bert_spec, bert_onnx, model_cache):
    result = compare_models(bert_spec, "torch:cpu", "onnxruntime:cpu", samples=2, layerwise=True,
                            layer_depth=5, cache_dir=model_cache)
    assert result.first_divergence is None, result.first_divergence
    names = [row["name"] for row in result.layers]
    assert "bert.encoder.layer.0.attention" in names, names
    assert all(row["noise_floor_max_abs_err"] is not None for row in result.layers)


def test_openvino_target_layerwise(cnn_spec, cnn_onnx, model_cache, tmp_path):
    target = _perturb(cnn_onnx.path, tmp_path / "perturbed-ov.onnx", "stem.0")
    result = compare_models(cnn_spec, "torch:cpu", "openvino:cpu", target_model=target, samples=2,
                            layerwise=True, cache_dir=model_cache)
    _check_perturbed(result, "stem.0")
    assert result.backend_info["target"]["inference_precision_hint"] == "f32"
