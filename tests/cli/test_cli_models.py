"""``modelyard models ...`` as a user runs it: real processes, --json schemas, one-line errors."""

import json

import pytest

from support import matmul_onnx, run_cli


def linear_onnx(path):
    return matmul_onnx(path)


@pytest.mark.slow
def test_register_list_show_alias_delete(tmp_path):
    home = tmp_path / "home"
    model = linear_onnx(tmp_path / "mm.onnx")
    out = run_cli("models", "register", str(model), "--name", "mm", "--metric", "acc=0.75", "--tag", "team=ml",
                  "--lineage", "dataset=toy@1", "--json", home=home, check=True)
    version = json.loads(out.stdout)
    assert version["schema"] == "modelyard.model-version/1" and version["ref"] == "mm@1"
    assert version["metrics"] == {"acc": 0.75} and version["lineage"]["dataset"] == "toy@1"
    human = run_cli("models", "register", str(model), "--name", "mm", home=home, check=True).stdout
    assert "registered mm@2" in human and "(batch, 2)" in human
    run_cli("models", "alias", "mm@1", "production", home=home, check=True)
    listing = json.loads(run_cli("models", "list", "--json", home=home, check=True).stdout)
    assert listing["schema"] == "modelyard.model-list/1"
    assert listing["items"][0]["aliases"] == {"production": 1} and listing["items"][0]["latest"] == 2
    shown = json.loads(run_cli("models", "show", "mm@production", "--json", home=home, check=True).stdout)
    assert shown["version"] == 1 and "# mm @ 1" in shown["card"] and "| acc | 0.75 |" in shown["card"]
    run_cli("models", "delete", "mm@2", "--yes", home=home, check=True)
    gone = run_cli("models", "show", "mm@2", home=home)
    assert gone.returncode == 1 and gone.stderr.strip() == "error: model 'mm' has no version 2"


@pytest.mark.slow
def test_errors_are_one_line(tmp_path):
    home = tmp_path / "home"
    (tmp_path / "notes.txt").write_text("hello")
    bad = run_cli("models", "register", str(tmp_path / "notes.txt"), "--name", "n", home=home)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "LightGBM model file" in bad.stderr
    metric = run_cli("models", "register", str(tmp_path / "notes.txt"), "--name", "n", "--metric", "acc=high",
                     home=home)
    assert metric.returncode == 2 and "'high' is not a number" in metric.stderr
    assert "Traceback" not in bad.stderr + metric.stderr
