"""``modelyard automl train`` and ``modelyard evaluate`` as a user runs them (in-process: the command drives a
worker itself)."""

import json

import pytest

from support import run_cli

pytestmark = pytest.mark.slow  # AutoML searches under a time budget, through real CLI processes


def _one_line_error(proc, code, text):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and text in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


def test_automl_train_then_evaluate(tmp_path):
    from modelyard.client import Client
    from modelyard.data.samples import write_tabular_sample

    home = tmp_path / "w"
    with Client(home=home) as client:  # set-up through the SDK (tests/cli/test_cli_data.py runs 'data import')
        client.data.import_path(write_tabular_sample("breast_cancer", tmp_path / "bc.csv"), "bc")
    result = json.loads(run_cli("automl", "train", "bc@1", "--name", "bc-model", "--time-budget", "600",
                                "--max-trials", "6", "--seed", "0", "--max-latency-ms", "20", "--json", home=home,
                                check=True).stdout)
    assert result["schema"] == "modelyard.automl/1" and result["model"] == "bc-model@1"
    assert result["metric"] == "accuracy" and result["score"] >= 0.9 and result["latency_ms"] <= 20
    searched = [e for e in result["leaderboard"] if e["family"] != "ensemble"]  # the ensemble is built, not tried
    assert len(searched) <= 6 and result["max_trials"] == 6 and result["stop_reason"] != "time budget"
    assert all({"family", "params", "score", "latency_ms", "accepted"} <= set(e) for e in result["leaderboard"])
    report = tmp_path / "report.html"
    human = run_cli("evaluate", "bc-model@1", "--data", "bc@1", "-o", str(report), home=home, check=True).stdout
    assert "accuracy" in human and "roc_auc" in human and report.read_text().startswith("<!doctype html>")
    evaluation = json.loads(run_cli("evaluate", "bc-model@1", "--data", "bc@1", "--split", "validation", "--json",
                                    home=home, check=True).stdout)
    assert evaluation["schema"] == "modelyard.evaluation/1" and evaluation["rows"] == 113
    runs = json.loads(run_cli("runs", "list", "--experiment", "automl", "--json", home=home, check=True).stdout)
    assert runs["items"][0]["model"] == "bc-model@1"

    _one_line_error(run_cli("automl", "train", "nope@1", "--name", "m", "--time-budget", "1", home=home), 1,
                    "dataset 'nope' not found")
    _one_line_error(run_cli("automl", "train", "bc@1", "--name", "m", "--metric", "r2", "--time-budget", "1",
                            home=home), 1, "metric 'r2' does not fit a classification task")
    _one_line_error(run_cli("automl", "train", "bc@1", "--name", "m", "--time-budget", "-1", home=home), 2,
                    "time_budget_s")
    _one_line_error(run_cli("automl", "train", "bc@1", "--name", "m", "--max-trials", "0", home=home), 2,
                    "max_trials")


def test_unknown_models_and_datasets_are_refused_before_a_job_exists(tmp_path):
    home = tmp_path / "w"
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    for args, text in [
        (("evaluate", "ghost@1", "--data", "nope@1"), "model 'ghost' not found"),
        (("batch", "ghost@1", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "o.csv")),
         "model 'ghost' not found"),
        (("automl", "train", "nope@1", "--name", "m"), "dataset 'nope' not found"),
    ]:
        proc = run_cli(*args, home=home)
        _one_line_error(proc, 1, text)
        assert "job" not in proc.stderr, proc.stderr  # refused at submit: no job was queued, none failed
    assert json.loads(run_cli("jobs", "list", "--json", home=home, check=True).stdout)["items"] == []
