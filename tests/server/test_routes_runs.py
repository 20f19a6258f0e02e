"""The runs API over the in-process SDK: create, log, finish, list, compare; roles and errors."""

import pytest

from modelyard.client import Client
from modelyard.core.errors import Conflict, Forbidden, InvalidInput, NotFound


def test_runs_api_round_trip(client):
    run = client.runs.create("r1", experiment="e", params={"lr": 0.1}, dataset="iris@1")
    assert run["schema"] == "modelyard.run/1" and run["status"] == "running"
    assert client.runs.log_metrics(run["id"], [{"key": "acc", "value": 0.5, "step": 0},
                                               {"key": "acc", "value": 0.7, "step": 1}]) == 2
    client.runs.log_params(run["id"], {"depth": 4})
    client.runs.log_lines(run["id"], ["line"])
    done = client.runs.finish(run["id"])
    assert done["status"] == "finished" and done["metrics"] == {"acc": 0.7}
    shown = client.runs.get(run["id"])
    assert [p["value"] for p in shown["history"]["acc"]] == [0.5, 0.7]
    other = client.runs.create("r2", experiment="e")
    listed = client.runs.list(experiment="e")
    assert listed["schema"] == "modelyard.run-list/1" and [r["id"] for r in listed["items"]] == [other["id"], run["id"]]
    assert client.runs.list(status="finished")["items"][0]["id"] == run["id"]
    compared = client.runs.compare([run["id"], other["id"]])
    assert compared["schema"] == "modelyard.run-compare/1" and compared["differs"]["params"] == ["depth", "lr"]
    with pytest.raises(Conflict):
        client.runs.log_metrics(run["id"], [{"key": "acc", "value": 1}])
    with pytest.raises(NotFound):
        client.runs.get("run_missing")
    with pytest.raises(InvalidInput, match="body field 'metrics.0.value'"):
        client.request("POST", f"/api/v1/runs/{other['id']}/metrics", json={"metrics": [{"key": "a", "value": "x"}]})
    with pytest.raises(InvalidInput, match="status"):
        client.runs.list(status="weird")


def test_viewers_read_runs_but_cannot_write(client, tmp_path):
    run = client.runs.create("r")
    token = client.tokens.create("viewer", "viewer")["token"]
    with Client(home=tmp_path / "home", token=token) as viewer:
        assert viewer.runs.get(run["id"])["id"] == run["id"]
        with pytest.raises(Forbidden, match="editor role"):
            viewer.runs.create("nope")
