"""`modelyard migrate convert|coverage|compare` and `modelyard backends`: JSON schemas, reports, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from modelyard.cli.main import app


@pytest.fixture(scope="module")
def cli():
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke


def test_backends_json_and_table(cli):
    result = cli("backends", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "modelyard.backends/1"
    by_name = {b["name"]: b for b in data["backends"]}
    assert by_name["torch:cpu"]["available"] and by_name["onnxruntime:cpu"]["available"]
    assert all(b["available"] or b["reason"] for b in data["backends"])
    table = cli("backends")
    assert "torch:cuda" in table.stdout and "onnxruntime:cpu" in table.stdout


def test_compare_json_and_html_report(cli, cnn_spec, cnn_onnx, model_cache, tmp_path):
    spec_file = cnn_spec.base_dir / "cnn.yaml"
    report = tmp_path / "report.html"
    result = cli("migrate", "compare", spec_file, "--samples", 2, "--layerwise", "--json", "-o", report,
                 "--cache-dir", model_cache)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "modelyard.compare/1" and data["verdict"] == "pass"
    assert data["layers"] and data["first_divergence"] is None
    assert report.read_text().startswith("<!doctype html>")
    human = cli("migrate", "compare", spec_file, "--samples", 1, "--cache-dir", model_cache)
    assert human.exit_code == 0 and "PASS" in human.stdout


def test_compare_fail_exits_1_and_bad_input_is_one_line(cli, cnn_spec, cnn_onnx, model_cache, tmp_path):
    from modelyard.migrate.model.passes import convert

    spec_file = cnn_spec.base_dir / "cnn.yaml"
    fp16 = convert(cnn_spec, "onnx-fp16", out_dir=tmp_path, cache_dir=model_cache).artifact
    failed = cli("migrate", "compare", spec_file, "--target-model", fp16.path, "--preset", "fp32", "--samples", 2,
                 "--json", "--cache-dir", model_cache)
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["verdict"] == "fail"
    bad = tmp_path / "bad.yaml"
    bad.write_text("entrypoint: x:y\ninputs: [{name: x, shape: [1], dtype: float8}]\n")
    result = cli("migrate", "compare", bad)
    assert result.exit_code == 2
    assert "spec.inputs[0].dtype" in result.output and "Traceback" not in result.output
    missing = cli("migrate", "compare", tmp_path / "absent.yaml")
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_convert_and_coverage_json(cli, cnn_spec, cnn_onnx, model_cache, tmp_path):
    spec_file = cnn_spec.base_dir / "cnn.yaml"
    result = cli("migrate", "convert", spec_file, "--to", "openvino", "-o", tmp_path / "ir", "--json",
                 "--cache-dir", model_cache)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "modelyard.convert/1" and data["artifact"]["format"] == "openvino"
    assert (tmp_path / "ir" / "cnn.xml").is_file() and (tmp_path / "ir" / "cnn.bin").is_file()
    cov = cli("migrate", "coverage", spec_file, "--target", "npu", "--json", "--cache-dir", model_cache)
    assert cov.exit_code == 0, cov.output
    assert json.loads(cov.stdout)["schema"] == "modelyard.coverage/1"
    human = cli("migrate", "coverage", spec_file, "--target", "openvino:cpu", "--cache-dir", model_cache)
    assert human.exit_code == 0 and "100.0%" in human.stdout


def test_convert_to_a_model_file_writes_that_file(cli, cnn_spec, cnn_onnx, model_cache, tmp_path):
    """`-o model.onnx` is the model file itself (it used to become a folder named model.onnx)."""
    import onnx

    spec_file = cnn_spec.base_dir / "cnn.yaml"
    out = tmp_path / "deliver" / "model.onnx"
    result = cli("migrate", "convert", spec_file, "--to", "onnx-fp16", "-o", out, "--cache-dir", model_cache, "--json")
    assert result.exit_code == 0, result.output
    assert out.is_file() and json.loads(result.stdout)["artifact"]["path"] == str(out)
    onnx.checker.check_model(str(out))
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.layers.json"]
    ir = tmp_path / "ir" / "net.xml"
    result = cli("migrate", "convert", spec_file, "--to", "openvino", "-o", ir, "--cache-dir", model_cache)
    assert result.exit_code == 0, result.output
    assert ir.is_file() and ir.with_suffix(".bin").is_file()
    wrong = cli("migrate", "convert", spec_file, "--to", "openvino", "-o", tmp_path / "x.onnx", "--cache-dir",
                model_cache)
    assert wrong.exit_code == 2 and "--to openvino writes a .xml file" in wrong.output
    assert not (tmp_path / "x.onnx").exists()
