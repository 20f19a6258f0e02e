"""Evaluation of registered models on dataset versions: metrics, JSON schema, self-contained HTML report."""

import json

import pytest
from trainfixtures import make_context, trained_home, trained_workspace  # noqa: F401  (fixtures)

from modelyard.core.errors import InvalidInput
from modelyard.train.evaluate import EvaluateSpec, evaluate, run_evaluate

pytestmark = pytest.mark.slow  # its workspace comes from an AutoML search (trainfixtures.trained_home)


def test_classification_evaluation(trained_workspace):
    result = evaluate(trained_workspace, "iris-model@1", "iris@1")
    data = result.to_dict()
    assert data["schema"] == "modelyard.evaluation/1" and data["task"] == "classification" and data["rows"] == 150
    assert {"accuracy", "f1_macro", "roc_auc", "precision_macro", "recall_macro", "log_loss", "ece"} <= set(
        data["metrics"])
    assert data["metrics"]["accuracy"] >= 0.9 and data["metrics"]["roc_auc"] >= 0.95
    assert sum(map(sum, data["confusion_matrix"])) == 150 and set(data["per_class"]) == {"setosa", "versicolor",
                                                                                           "virginica"}
    assert len(data["curves"]["roc"]) == 3 and data["curves"]["roc"][0]["fpr"][0] == 0.0
    assert data["feature_importance"][0]["feature"].startswith("petal")
    page = result.html
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 4 and "http" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    embedded = page.split('id="modelyard-evaluation">')[1].split("</script>")[0]
    assert json.loads(embedded)["metrics"] == data["metrics"]
    only_val = evaluate(trained_workspace, "iris-model@1", "iris@1", split="validation").to_dict()
    assert only_val["rows"] == 30
    assert "iris-model@1 on iris@1 (150 rows)" in str(result)


def test_evaluation_errors(trained_workspace):
    with pytest.raises(InvalidInput, match="iris-model@1 is a classification model; diabetes@1 is a regression"):
        evaluate(trained_workspace, "iris-model@1", "diabetes@1")
    with pytest.raises(InvalidInput, match="penguins@1 lacks the model's feature column"):
        evaluate(trained_workspace, "iris-model@1", "penguins@1")
    with pytest.raises(InvalidInput, match="split 'test'"):
        evaluate(trained_workspace, "iris-model@1", "iris@1", split="test")


def test_evaluate_job_writes_the_report_and_a_run(trained_home, make_context, trained_workspace):
    from modelyard.train.tracking import RunStore

    ctx = make_context(trained_home[0])
    result = run_evaluate(EvaluateSpec(model="iris-model@1", data="iris@1"), ctx)
    assert (ctx.workdir / "report.html").is_file() and result["report"]["digest"].startswith("sha256:")
    run = RunStore(trained_workspace).get(result["run"])
    assert run.experiment == "evaluation" and run.metrics["accuracy"] == result["metrics"]["accuracy"]
    json.dumps(result, allow_nan=False)  # no NaN reaches the job's JSON result


def _register_with_lineage(workspace, name, lineage):
    """iris-model@1's files again, as another model whose lineage says what it was fitted on."""
    from modelyard.registry.versions import ModelRegistry

    registry = ModelRegistry(workspace)
    source = registry.get_version("iris-model@1")
    files = {stored: info["digest"] for stored, info in source.files.items()}
    return registry.create_version(name, files, source.entry, source.source_format, task=source.signature.task,
                                   lineage=lineage).ref


def test_evaluation_warns_when_it_measures_rows_the_model_was_fitted_on(trained_workspace):
    from modelyard.data.datasets import DatasetStore

    iris = DatasetStore(trained_workspace).get("iris@1")
    counts = iris.split["counts"]
    refitted = _register_with_lineage(trained_workspace, "iris-refit", {
        "dataset": "iris@1", "dataset_id": iris.id, "fit_splits": ["train", "validation"]})
    data = evaluate(trained_workspace, refitted, "iris@1", split="validation").to_dict()
    assert data["in_sample"] == {"rows": counts["validation"], "of": counts["validation"],
                                 "fit_splits": ["train", "validation"], "dataset": "iris@1"}
    [warning] = data["warnings"]
    assert "were used to fit iris-refit@1" in warning and "separately imported test set" in warning

    train_only = _register_with_lineage(trained_workspace, "iris-train-only", {
        "dataset": "iris@1", "dataset_id": iris.id, "fit_splits": ["train"]})
    held_out = evaluate(trained_workspace, train_only, "iris@1", split="validation")
    assert held_out.to_dict()["in_sample"] is None and held_out.to_dict()["warnings"] == []
    assert "In-sample" not in held_out.html
    everything = evaluate(trained_workspace, train_only, "iris@1")
    assert everything.to_dict()["in_sample"]["rows"] == counts["train"]
    assert "evaluate --split validation" in everything.to_dict()["warnings"][0] and "In-sample" in everything.html

    # registered by AutoML before fit_splits was recorded: a table was refitted on train + validation
    legacy = _register_with_lineage(trained_workspace, "iris-legacy", {"dataset": "iris@1", "dataset_id": iris.id})
    assert evaluate(trained_workspace, legacy, "iris@1", split="validation").to_dict()["in_sample"]["rows"] == 30

    elsewhere = _register_with_lineage(trained_workspace, "iris-elsewhere", {"dataset": "other@1",
                                                                             "dataset_id": "dsv_other"})
    assert evaluate(trained_workspace, elsewhere, "iris@1").to_dict()["in_sample"] is None


def test_the_evaluate_spec_names_its_dataset_like_automl_and_still_takes_data():
    assert EvaluateSpec.model_validate({"model": "m@1", "dataset": "d@1"}).dataset == "d@1"
    assert EvaluateSpec.model_validate({"model": "m@1", "data": "d@1"}).model_dump()["dataset"] == "d@1"
    assert "dataset" in EvaluateSpec.model_json_schema()["properties"]
