"""Tracked runs: the store, and ``modelyard.run(...)`` from a script."""

import json
import math

import pytest

import modelyard
from modelyard.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from modelyard.train.tracking import RunStore


def test_run_records_params_metrics_logs_artifacts(workspace):
    runs = RunStore(workspace)
    run = runs.create("baseline", experiment="iris", params={"lr": 0.1, "inf": float("inf")}, dataset="iris@1")
    assert run.status == "running" and run.params == {"lr": 0.1, "inf": "inf"} and run.dataset == "iris@1"
    assert runs.log_metrics(run.id, [{"key": "loss", "value": 1.0}, {"key": "loss", "value": 0.5},
                                     {"key": "acc", "value": 0.9, "step": 10}]) == 3
    runs.log_metrics(run.id, [{"key": "loss", "value": 0.25}])
    history = runs.metric_history(run.id)
    assert [p["step"] for p in history["loss"]] == [0, 1, 2] and history["acc"][0]["step"] == 10
    runs.log_params(run.id, {"depth": 3})
    runs.log_lines(run.id, ["epoch 1", "epoch 2"])
    blob = workspace.blobs.put_bytes(b"weights")
    runs.add_artifact(run.id, "model.bin", blob.digest)
    done = runs.finish(run.id)
    assert done.status == "finished" and done.metrics == {"loss": 0.25, "acc": 0.9}
    assert done.params["depth"] == 3 and done.artifacts[0]["name"] == "model.bin" and done.duration_s >= 0
    assert [line["line"] for line in runs.logs(run.id)["lines"]] == ["epoch 1", "epoch 2"]
    with pytest.raises(Conflict, match="is finished; it no longer accepts changes"):
        runs.log_metrics(run.id, [{"key": "loss", "value": 0.1}])
    with pytest.raises(Conflict, match="already ended"):
        runs.finish(run.id)
    assert [r.id for r in runs.list(experiment="iris")] == [run.id]


def test_bad_metrics_are_refused(sqlite_workspace):
    runs = RunStore(sqlite_workspace)
    run = runs.create("x")
    for points, message in (([{"key": "", "value": 1}], "metric key"),
                            ([{"key": "a", "value": "abc"}], "is not a number"),
                            ([{"key": "a", "value": True}], "is not a number"),
                            ([{"key": "a", "value": 1, "step": -1}], "step must be")):
        with pytest.raises(InvalidInput, match=message):
            runs.log_metrics(run.id, points)
    assert runs.metric_history(run.id) == {}
    with pytest.raises(NotFound):
        runs.get("run_nope")
    with pytest.raises(InvalidInput, match="the version must be a number"):
        runs.create("y", dataset="iris@x")


def test_compare_marks_differences_and_the_best(sqlite_workspace):
    runs = RunStore(sqlite_workspace)
    a = runs.create("a", params={"lr": 0.1, "depth": 3})
    b = runs.create("b", params={"lr": 0.01, "depth": 3})
    runs.log_metrics(a.id, [{"key": "val_accuracy", "value": 0.9}, {"key": "val_loss", "value": 0.3}])
    runs.log_metrics(b.id, [{"key": "val_accuracy", "value": 0.8}, {"key": "val_loss", "value": 0.2}])
    result = runs.compare([a.id, b.id])
    assert result["differs"]["params"] == ["lr"]
    assert result["best"] == {"val_accuracy": a.id, "val_loss": b.id}


@pytest.mark.slow  # > 2.5 s (subprocesses or jobs): out of the inner loop, in make test
def test_sdk_context_manager_records_a_script(tmp_path):
    home = tmp_path / "home"
    with modelyard.run("script", experiment="sdk", params={"lr": 3e-4}, home=home) as r:
        for step in range(5):
            r.log_metric("loss", 1.0 / (step + 1))
        r.log_metrics({"acc": 0.5, "f1": 0.4}, step=4)
        r.log("hello from the script")
        weights = tmp_path / "w.bin"
        weights.write_bytes(b"abc")
        r.log_artifact(weights)
    assert r.info["status"] == "finished"
    with pytest.raises(ZeroDivisionError), modelyard.run("broken", experiment="sdk", home=home) as broken:
        broken.log_metric("loss", 1.0)
        raise ZeroDivisionError("boom")
    with modelyard.Client(home=home) as client:
        done = client.runs.get(r.id)
        assert done["metrics"]["loss"] == pytest.approx(0.2) and len(done["history"]["loss"]) == 5
        assert done["artifacts"][0]["name"] == "w.bin"
        assert client.runs.logs(r.id)["lines"][0]["line"] == "hello from the script"
        failed = client.runs.get(broken.id)
        assert failed["status"] == "failed" and "ZeroDivisionError: boom" in failed["error"]
        assert failed["metrics"] == {"loss": 1.0}


def test_non_finite_metrics_are_stored_and_read_back(workspace):
    """MLflow stores NaN and inf; a loss that diverged is worth seeing (issue 21 item 4)."""
    runs = RunStore(workspace)
    run = runs.create("diverged")
    stored = runs.log_metrics(run.id, [{"key": "loss", "value": 1.0}, {"key": "loss", "value": float("nan")},
                                       {"key": "grad", "value": float("inf")}, {"key": "low", "value": "-Infinity"}])
    assert stored == 4
    history = runs.metric_history(run.id)
    assert history["loss"][0]["value"] == 1.0 and math.isnan(history["loss"][1]["value"])
    assert history["grad"][0]["value"] == math.inf and history["low"][0]["value"] == -math.inf
    got = runs.get(run.id)
    assert math.isnan(got.metrics["loss"]) and got.metrics["grad"] == math.inf
    assert got.to_dict()["metrics"] == {"loss": "NaN", "grad": "Infinity", "low": "-Infinity"}
    other = runs.create("fine")
    runs.log_metrics(other.id, [{"key": "loss", "value": 0.5}])
    assert runs.compare([run.id, other.id])["best"]["loss"] == other.id


def test_sdk_run_with_nan_metrics_keeps_every_point(tmp_path):
    home = tmp_path / "home"
    with modelyard.run("nan", home=home) as r:
        r.log_metric("loss", 0.5)
        r.log_metric("loss", float("nan"))
        r.log_metric("loss", float("-inf"))
    assert r.info["status"] == "finished"
    with modelyard.Client(home=home) as client:
        shown = client.runs.get(r.id)
        values = [p["value"] for p in shown["history"]["loss"]]
        assert values[0] == 0.5 and math.isnan(values[1]) and values[2] == -math.inf
        assert shown["metrics"]["loss"] == -math.inf
        raw = client.request("GET", f"/api/v1/runs/{r.id}").text
        assert "NaN" in raw and json.loads(raw, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


class _FlakyRuns:
    """The SDK's runs API with log_metrics failing the first ``failures`` times."""

    def __init__(self, runs, failures):
        self._runs, self.failures = runs, failures

    def log_metrics(self, run_id, points):
        if self.failures:
            self.failures -= 1
            raise Unavailable("server unreachable")
        return self._runs.log_metrics(run_id, points)

    def __getattr__(self, name):
        return getattr(self._runs, name)


def test_points_a_failed_flush_could_not_send_are_sent_by_the_next(tmp_path):
    home = tmp_path / "home"
    with modelyard.Client(home=home) as client:
        client.runs = _FlakyRuns(client.runs, failures=1)
        with modelyard.run("flaky", client=client) as r:
            r.log_metric("loss", 1.0)
            with pytest.raises(Unavailable):
                r.flush()
            r.log_metric("loss", 0.5)
        assert r.info["status"] == "finished"
        assert [p["value"] for p in client.runs.get(r.id)["history"]["loss"]] == [1.0, 0.5]


def test_a_flush_failure_at_the_end_never_masks_the_users_exception(tmp_path):
    home = tmp_path / "home"
    with modelyard.Client(home=home) as client:
        client.runs = _FlakyRuns(client.runs, failures=100)
        with pytest.warns(RuntimeWarning, match="could not record the end"), pytest.raises(KeyError, match="mine"), \
                modelyard.run("masked", client=client) as r:
            r.log_metric("loss", 1.0)
            raise KeyError("mine")
        assert client.runs.get(r.id)["status"] == "failed"


def test_a_flush_failure_on_a_clean_exit_fails_the_run_and_says_so(tmp_path):
    home = tmp_path / "home"
    with modelyard.Client(home=home) as client:
        client.runs = _FlakyRuns(client.runs, failures=100)
        with pytest.raises(Unavailable), modelyard.run("lost", client=client) as r:
            r.log_metric("loss", 1.0)
        shown = client.runs.get(r.id)
        assert shown["status"] == "failed" and "1 metric point(s)" in shown["error"]
