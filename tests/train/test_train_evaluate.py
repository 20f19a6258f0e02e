"""Evaluation of registered models on dataset versions: metrics, JSON schema, self-contained HTML report."""

import json

import pytest

from modelyard.core.errors import InvalidInput
from modelyard.train.evaluate import EvaluateSpec, evaluate, run_evaluate
from trainfixtures import make_context, trained_home, trained_workspace  # noqa: F401  (fixtures)

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
