"""Compare: fp32 passes, fp16 passes under fp16 thresholds and fails under fp32 ones, INT8 gets a verdict and task
agreement; bad input gives a clear error or a fail verdict."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from modelyard.core.errors import InvalidInput
from modelyard.migrate.model.compare import compare_models
from modelyard.migrate.model.compare_report import render_html
from modelyard.migrate.model.metrics import TensorStats, ThresholdSet, load_thresholds, verdict_for

SCHEMA_KEYS = {"schema", "reference", "target", "samples", "verdict", "thresholds", "noise_floor", "outputs", "task",
               "layers", "first_divergence"}
OUTPUT_KEYS = {"name", "shape", "dtype", "max_abs_err", "max_rel_err", "mean_abs_err", "rmse", "cosine", "sqnr_db",
               "allclose", "verdict", "err_ratio_permille", "err_ratio_percent", "nan_mismatch", "inf_mismatch"}


@pytest.mark.slow
def test_fp32_onnxruntime_passes_on_a_transformers_resnet(resnet_spec, resnet_onnx, model_cache):
    result = compare_models(resnet_spec, "torch:cpu", "onnxruntime:cpu", samples=4, cache_dir=model_cache,
                            layerwise=True)
    assert result.verdict == "pass", str(result)
    assert result.first_divergence is None and len(result.layers) > 10
    assert any(".layer.2.normalization" in row["name"] for row in result.layers)
    assert bool(result)
    data = result.to_dict()
    assert SCHEMA_KEYS <= set(data) and data["schema"] == "modelyard.compare/1"  # noqa: SIM300 - subset check
    out = data["outputs"][0]
    assert OUTPUT_KEYS <= set(out) and out["name"] == "logits"  # noqa: SIM300 - subset check
    assert out["cosine"] > 0.9999 and out["max_abs_err"] < 1e-4 and out["nonfinite_mismatch"] == 0
    assert data["task"]["top1_agreement"] == 1.0 and data["task"]["top_k"] == 3
    floor = data["noise_floor"]
    assert floor["method"] == "fp64" and floor["outputs"]["logits"]["max_abs_err"] > 0
    assert out["noise_floor_ratio"] is not None and out["noise_floor_ratio"] < 100
    assert data["thresholds"]["preset"] == "fp32"
    json.dumps(data)  # JSON-able as is
    assert "PASS" in str(result)


@pytest.mark.slow
def test_fp16_passes_under_fp16_thresholds_and_fails_under_fp32(resnet_spec, resnet_fp16, model_cache):
    auto = compare_models(resnet_spec, "torch:cpu", "onnxruntime:cpu", target_model=resnet_fp16.path, samples=4,
                          cache_dir=model_cache)
    assert auto.thresholds["preset"] == "fp16"
    assert auto.verdict == "pass", str(auto)
    strict = compare_models(resnet_spec, "torch:cpu", "onnxruntime:cpu", target_model=resnet_fp16.path, samples=4,
                            cache_dir=model_cache, thresholds=ThresholdSet(preset="fp32"))
    assert strict.verdict == "fail", str(strict)
    assert any("SQNR" in r for r in strict.reasons)
    assert not strict


def test_int8_gets_a_verdict_and_task_agreement(cnn_spec, cnn_onnx, model_dir, model_cache):
    from modelyard.migrate.model.passes import convert

    int8 = convert(cnn_spec, "onnx-int8-static", out_dir=model_dir / "int8", cache_dir=model_cache).artifact
    result = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=int8.path, samples=6,
                            cache_dir=model_cache)
    assert result.thresholds["preset"] == "int8"  # chosen from the artifact: nobody asked for it
    # seeded feeds and calibration: the INT8 CNN keeps every top-1 class and stays within INT8's limits...
    assert result.verdict == "pass" and result, str(result)
    assert result.task["type"] == "classification" and result.task["count"] == 12
    assert result.task["top1_agreement"] == 1.0 and result.task["verdict"] == "pass"
    logits = result.outputs[0]
    assert 0.98 <= logits["cosine"] < 1.0 and 20 < logits["sqnr_db"] < 80 and not logits["allclose"]
    # ...but it is quantised: held to fp32's limits the same outputs do not pass
    strict = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=int8.path, samples=6,
                            cache_dir=model_cache, thresholds=ThresholdSet(preset="fp32"))
    assert strict.verdict == "fail" and not strict, str(strict)


def test_per_output_override_changes_the_verdict(cnn_spec, cnn_onnx, model_cache):
    limits = ThresholdSet(preset="fp32", outputs={"logits": {"pass_cosine": 1.0, "pass_max_abs_err": 0.0,
                                                              "noise_floor_factor": None}})
    result = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", samples=2, thresholds=limits,
                            cache_dir=model_cache)
    assert result.outputs[0]["verdict"] == "warn"
    assert result.thresholds["outputs"]["logits"]["pass_max_abs_err"] == 0.0


def test_threshold_file_errors_name_the_field(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("preset: fp16\noutputs:\n  logits: {pass_cosine: 2}\n")
    with pytest.raises(InvalidInput, match="outputs.logits.pass_cosine"):
        load_thresholds(str(path)).for_output("logits")
    path.write_text("preset: fp8\n")
    with pytest.raises(InvalidInput, match="preset"):
        load_thresholds(str(path))


def _rewrite(model_path, out_path, edit):
    model = onnx.load(str(model_path))
    edit(model)
    onnx.save(model, str(out_path))
    return out_path


def test_nan_outputs_fail(cnn_spec, cnn_onnx, model_cache, tmp_path):
    def poison(model):
        out = model.graph.output[0].name
        for node in model.graph.node:
            for i, name in enumerate(node.output):
                if name == out:
                    node.output[i] = "pre_nan"
        model.graph.initializer.append(numpy_helper.from_array(np.array([np.nan], dtype=np.float32), "nan_value"))
        model.graph.node.append(helper.make_node("Mul", ["pre_nan", "nan_value"], [out]))

    path = _rewrite(cnn_onnx.path, tmp_path / "nan.onnx", poison)
    result = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=path, samples=2,
                            cache_dir=model_cache)
    assert result.verdict == "fail"
    assert result.outputs[0]["nan_mismatch"] > 0
    assert any("nan" in r for r in result.reasons)


def test_output_shape_mismatch_fails(cnn_spec, cnn_onnx, model_cache, tmp_path):
    def slice_output(model):
        out = model.graph.output[0].name
        for node in model.graph.node:
            for i, name in enumerate(node.output):
                if name == out:
                    node.output[i] = "full"
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array([0], dtype=np.int64), "s0"),
            numpy_helper.from_array(np.array([5], dtype=np.int64), "s1"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "ax"),
        ])
        model.graph.node.append(helper.make_node("Slice", ["full", "s0", "s1", "ax"], [out]))
        del model.graph.output[0].type.tensor_type.shape.dim[:]

    path = _rewrite(cnn_onnx.path, tmp_path / "short.onnx", slice_output)
    result = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=path, samples=1,
                            cache_dir=model_cache)
    assert result.verdict == "fail"
    assert "shape differs" in result.reasons[0]


def test_mismatched_input_names_and_corrupt_files_are_clear(cnn_spec, cnn_onnx, model_cache, tmp_path):
    def rename(model):
        old = model.graph.input[0].name
        model.graph.input[0].name = "image"
        for node in model.graph.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = "image"

    renamed = _rewrite(cnn_onnx.path, tmp_path / "renamed.onnx", rename)
    with pytest.raises(InvalidInput, match="input names do not match.*missing \\['image'\\]"):
        compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=renamed, samples=1, cache_dir=model_cache)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"definitely not protobuf")
    with pytest.raises(InvalidInput, match="corrupt.onnx"):
        compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", target_model=corrupt, samples=1, cache_dir=model_cache)


def test_metrics_on_known_values():
    stats = TensorStats("t")
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    stats.update(ref, ref + np.array([0.0, 0.0, 0.0, 0.01]))
    m = stats.metrics()
    assert m["max_abs_err"] == pytest.approx(0.01)
    assert m["max_rel_err"] == pytest.approx(0.0025)
    assert m["rmse"] == pytest.approx(0.005)
    assert m["sqnr_db"] == pytest.approx(10 * np.log10(30 / 1e-4))
    assert m["err_ratio_permille"] == pytest.approx(0.25) and m["err_ratio_percent"] == 0
    verdict, reasons = verdict_for(stats, ThresholdSet(preset="fp32").base())
    assert verdict == "fail" and "SQNR" in reasons[0]
    verdict, _ = verdict_for(stats, ThresholdSet(preset="int8").base())
    assert verdict == "pass"


def test_html_report_is_self_contained(cnn_spec, cnn_onnx, model_cache):
    result = compare_models(cnn_spec, "torch:cpu", "onnxruntime:cpu", samples=2, layerwise=True,
                            cache_dir=model_cache)
    page = render_html(result.to_dict())
    assert page.startswith("<!doctype html>") and "<svg" in page and "PASS" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "noise floor" in page and "stage1.0" in page
