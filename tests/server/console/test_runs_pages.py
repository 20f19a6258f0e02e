"""Runs pages: picked columns and sort, run charts downsampled, compare, group by a parameter."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def runs(sqlite_workspace):
    from modelyard.train.tracking import RunStore

    store = RunStore(sqlite_workspace)
    made = []
    for lr in (0.1, 0.01):
        for seed in range(3):
            run = store.create(f"lr{lr}-s{seed}", experiment="sweep", params={"lr": lr, "seed": seed})
            store.log_metrics(run.id, [{"key": "acc", "value": lr * 5 + seed / 100, "step": s} for s in range(3)])
            store.log_metrics(run.id, [{"key": "loss", "value": 1 - lr - seed / 100}])
            store.finish(run.id)
            made.append(run)
    return store, made


def _rows(html: str) -> list[str]:
    return re.findall(r'<td><a href="/runs/run_[^"]+">([^<]+)</a>', html)


def test_runs_table_sorts_by_a_picked_metric_and_shows_picked_columns(as_role, runs):
    viewer = as_role("viewer")
    page = viewer.get("/runs?experiment=sweep&m=acc&p=lr,seed&sort=metric:acc&order=desc")
    assert page.status_code == 200
    assert _rows(page.text) == ["lr0.1-s2", "lr0.1-s1", "lr0.1-s0", "lr0.01-s2", "lr0.01-s1", "lr0.01-s0"]
    assert ">seed" in page.text and ">lr" in page.text
    ascending = viewer.get("/runs?experiment=sweep&sort=metric:acc&order=asc&per=5")
    assert _rows(ascending.text)[0] == "lr0.01-s0" and len(_rows(ascending.text)) == 5
    assert "6 total · page 1 of 2" in ascending.text
    second = viewer.get("/runs?experiment=sweep&sort=metric:acc&order=asc&per=5&page=2")
    assert _rows(second.text) == ["lr0.1-s2"]
    assert _rows(viewer.get("/runs?q=s1").text) == ["lr0.01-s1", "lr0.1-s1"]


def test_api_twin_pages_and_sorts_the_same(as_role, runs):
    admin = as_role("admin")
    auth = {"Authorization": f"Bearer {admin.secret}"}
    body = admin.get("/api/v1/runs?experiment=sweep&sort=param:lr&order=asc&offset=3&limit=2", headers=auth).json()
    assert body["total"] == 6 and [r["params"]["lr"] for r in body["items"]] == [0.1, 0.1]


def test_run_page_charts_every_metric(as_role, runs):
    _, made = runs
    page = as_role("viewer").get(f"/runs/{made[0].id}")
    assert page.status_code == 200 and page.text.count("<svg") == 1 and "3 steps" in page.text
    assert "loss: one value each" in page.text


def test_compare_overlays_runs_and_marks_differing_params(as_role, runs):
    _, made = runs
    viewer = as_role("viewer")
    page = viewer.get("/runs/compare?" + "&".join(f"ids={r.id}" for r in made[:3]) + "&key=acc")
    assert page.status_code == 200 and page.text.count('class="line c') == 3
    assert 'class="differs">0<' in page.text or 'differs' in page.text
    too_few = viewer.get(f"/runs/compare?ids={made[0].id}")
    assert too_few.status_code == 422 and "pick 2 to 10 runs" in too_few.text


def test_group_by_parameter_shows_mean_and_std_across_seeds(as_role, runs):
    page = as_role("viewer").get("/runs/groups?experiment=sweep&param=lr&metric=acc")
    assert page.status_code == 200
    # lr=0.1: acc 0.5, 0.51, 0.52 -> mean 0.51, std 0.01
    assert re.search(r"<td>0.1</td><td class=\"num\">3</td><td class=\"num\">0.51</td><td class=\"num\">0.01</td>",
                     page.text), page.text[-3000:]
    api = as_role("admin")
    body = api.get("/api/v1/runs-groups?experiment=sweep&param=lr&metric=loss",
                   headers={"Authorization": f"Bearer {api.secret}"}).json()
    assert body["lower_is_better"] and body["groups"][0]["value"] == "0.1" and body["groups"][0]["n"] == 3


def test_long_histories_are_downsampled_keeping_spikes(sqlite_workspace):
    from modelyard.train.run_queries import metric_series
    from modelyard.train.tracking import RunStore

    store = RunStore(sqlite_workspace)
    run = store.create("long")
    points = [{"key": "loss", "value": 1.0, "step": s} for s in range(20_000)]
    points[12_345]["value"] = 99.0
    for start in range(0, len(points), 10_000):
        store.log_metrics(run.id, points[start:start + 10_000])
    series = metric_series(store, run.id, "loss", max_points=500)
    assert series["downsampled"] and series["count"] == 20_000 and len(series["points"]) <= 500
    assert max(v for _, v in series["points"]) == 99.0
    steps = [s for s, _ in series["points"]]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 19_999


def test_non_finite_metrics_travel_as_strings_and_charts_draw_the_finite_points(as_role, runs):
    store, _ = runs
    run = store.create("diverging", experiment="sweep")
    admin = as_role("admin")
    auth = {"Authorization": f"Bearer {admin.secret}"}
    logged = admin.post(f"/api/v1/runs/{run.id}/metrics", headers=auth, json={"metrics": [
        {"key": "diverged", "value": "Infinity", "step": 0}, {"key": "diverged", "value": "NaN", "step": 1},
        {"key": "diverged", "value": 0.5, "step": 2}]})
    assert logged.status_code < 300
    series = admin.get(f"/api/v1/runs/{run.id}/series/diverged", headers=auth)
    assert series.status_code == 200
    assert series.json()["points"] == [[0, "Infinity"], [1, "NaN"], [2, 0.5]] and series.json()["last"] == 0.5
    page = admin.get(f"/runs/{run.id}")
    assert page.status_code == 200 and "2 non-finite points (NaN or infinite) not drawn" in page.text


def test_groups_with_a_non_finite_metric_answer_standard_json(as_role, runs):
    """A run whose metric went NaN (or infinite) makes its group's statistics non-finite: the API answers them as
    the strings every other endpoint uses, never a bare NaN a browser's JSON.parse rejects; the page still shows
    the group."""
    import json

    store, _ = runs
    for name, value in (("nan", "NaN"), ("inf", "Infinity")):
        run = store.create(f"lr0.5-{name}", experiment="sweep", params={"lr": 0.5, "seed": 0})
        store.log_metrics(run.id, [{"key": "loss", "value": value, "step": 0}])
        store.finish(run.id)
    admin = as_role("admin")
    response = admin.get("/api/v1/runs-groups?experiment=sweep&param=lr&metric=loss",
                         headers={"Authorization": f"Bearer {admin.secret}"})
    assert response.status_code == 200

    def refuse(constant):
        raise AssertionError(f"bare {constant} in the JSON")

    body = json.loads(response.text, parse_constant=refuse)
    diverged = next(g for g in body["groups"] if g["value"] == "0.5")
    assert diverged["n"] == 2 and diverged["mean"] == "NaN" and diverged["std"] == "NaN"
    assert diverged["min"] == "NaN" or diverged["max"] == "Infinity"
    assert [g["value"] for g in body["groups"]][:2] == ["0.1", "0.01"]  # finite groups ranked first
    page = admin.get("/runs/groups?experiment=sweep&param=lr&metric=loss")
    assert page.status_code == 200 and "<td>0.5</td>" in page.text
