"""``client.automl.train`` and ``client.evaluate``: the job kinds as one call each, with the same spec keys."""

import pytest


@pytest.mark.slow
def test_automl_and_evaluate_helpers_run_the_jobs_and_return_their_results(tmp_path):
    from modelyard.client import Client
    from modelyard.core.errors import ModelyardError, NotFound
    from modelyard.data.samples import write_tabular_sample

    with Client(home=tmp_path / "home") as client:
        client.data.import_path(write_tabular_sample("iris", tmp_path / "iris.csv"), "iris")
        result = client.automl.train("iris@1", "iris-model", time_budget_s=600, max_trials=2, families=["linear"],
                                     ensemble=False, refit=False)
        assert result["schema"] == "modelyard.automl/1" and result["model"] == "iris-model@1"
        assert result["fit_splits"] == ["train"]
        report = tmp_path / "report.html"
        evaluation = client.evaluate("iris-model@1", "iris@1", split="validation", report=report)
        assert evaluation["schema"] == "modelyard.evaluation/1" and evaluation["rows"] == 30
        assert evaluation["in_sample"] is None and report.read_text().startswith("<!doctype html>")
        # the old key of the evaluate spec still works through the plain job API
        job = client.jobs.run("evaluate", {"model": "iris-model@1", "data": "iris@1"})
        assert job["spec"]["dataset"] == "iris@1" and job["result"]["in_sample"]["rows"] == 120
        with pytest.raises(NotFound, match="dataset 'nope' not found"):
            client.automl.train("nope@1", "m")
        with pytest.raises(ModelyardError, match="automl.train job .* failed: metric 'r2' does not fit"):
            client.automl.train("iris@1", "m", metric="r2", time_budget_s=1)
