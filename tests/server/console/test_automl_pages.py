"""The AutoML wizard: choosing a dataset runs its check, starting submits the same automl.train spec as the API,
the progress page shows the live leaderboard from the run's trial lines and then the winner."""

from __future__ import annotations

import json

import sqlalchemy as sa
from console_support import csrf_of


def _dataset(workspace, tmp_path):
    from modelyard.data.datasets import DatasetStore

    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{'yes' if i % 2 else 'no'}\n" for i in range(150)))
    return DatasetStore(workspace).import_path(path, "tab")


def test_wizard_checks_the_dataset_and_starts_the_job(as_role, sqlite_workspace, tmp_path):
    from modelyard.jobs.queue import JobQueue

    _dataset(sqlite_workspace, tmp_path)
    editor = as_role("editor")
    page = editor.get("/automl?dataset=tab@1")
    assert "ready for training" in page.text and "Start AutoML" in page.text
    answer = editor.post("/automl", data={"csrf": csrf_of(page.text), "dataset": "tab@1", "name": "tab-automl",
                                          "task": "auto", "time_budget_s": "20", "max_latency_ms": "5"},
                         follow_redirects=False)
    job_id = answer.headers["location"].split("?")[0].rsplit("/", 1)[-1]
    job = JobQueue(sqlite_workspace).get(job_id)
    assert job.kind == "automl.train" and job.owner == "editor-user"
    assert {k: job.spec[k] for k in ("dataset", "name", "time_budget_s", "max_latency_ms")} == {
        "dataset": "tab@1", "name": "tab-automl", "time_budget_s": 20.0, "max_latency_ms": 5.0}
    bad = editor.post("/automl", data={"csrf": csrf_of(page.text), "dataset": "tab@1", "name": "x",
                                       "max_latency_ms": "fast"})
    assert bad.status_code == 422 and "not a number" in bad.text
    viewer = as_role("viewer")
    assert "Start AutoML" not in viewer.get("/automl?dataset=tab@1").text
    assert viewer.post("/automl", data={"csrf": csrf_of(viewer.get("/").text), "dataset": "tab@1",
                                        "name": "v"}).status_code == 403


def test_wizard_takes_max_trials_as_the_cli_and_api_do(as_role, sqlite_workspace, tmp_path):
    """``max_trials`` (``--max-trials``, the spec's field) is in the wizard too: a number goes into the spec, an
    empty field leaves the search time-bounded, a bad one is refused naming the field."""
    from modelyard.jobs.queue import JobQueue

    _dataset(sqlite_workspace, tmp_path)
    editor = as_role("editor")
    page = editor.get("/automl?dataset=tab@1")
    assert 'name="max_trials"' in page.text
    form = {"csrf": csrf_of(page.text), "dataset": "tab@1", "name": "tab-automl", "time_budget_s": "20"}

    def submitted(**fields):
        answer = editor.post("/automl", data={**form, **fields}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        return JobQueue(sqlite_workspace).get(answer.headers["location"].split("?")[0].rsplit("/", 1)[-1]).spec

    assert submitted(max_trials="7")["max_trials"] == 7
    assert submitted(max_trials="")["max_trials"] is None
    for bad in ("many", "0", "2.5"):
        refused = editor.post("/automl", data={**form, "max_trials": bad})
        assert refused.status_code == 422 and "max_trials" in refused.text, refused.text


def test_wizard_passes_a_detection_input_size_into_the_spec(as_role, sqlite_workspace, tmp_path):
    """The detection option ``input_size`` (``--input-size``) goes into the spec as a number; text or a size that is
    no multiple of 16 is refused before a job exists. The task and the field are offered for object-detection
    datasets only."""
    from modelyard.data import formats
    from modelyard.data.datasets import DatasetStore
    from modelyard.jobs.queue import JobQueue
    from modelyard.train.detectors.synthetic import make_shapes

    _dataset(sqlite_workspace, tmp_path)
    images, annotations = make_shapes(16, size=48, seed=0, max_objects=3)
    pixels = dict(zip((a.item for a in annotations.items), images, strict=True))

    def png(item: str) -> bytes:
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(pixels[item]).save(buffer, format="PNG")
        return buffer.getvalue()

    formats.write(annotations, tmp_path / "coco", "coco", png)
    DatasetStore(sqlite_workspace).import_path(tmp_path / "coco", "shapes")
    editor = as_role("editor")
    detection = editor.get("/automl?dataset=shapes@1").text
    assert "<option>detection</option>" in detection and 'name="input_size"' in detection, detection
    page = editor.get("/automl?dataset=tab@1")
    assert 'name="input_size"' not in page.text and "<option>detection</option>" not in page.text
    form = {"csrf": csrf_of(page.text), "dataset": "tab@1", "name": "tab-automl", "time_budget_s": "20"}
    answer = editor.post("/automl", data={**form, "input_size": "320"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    job_id = answer.headers["location"].split("?")[0].rsplit("/", 1)[-1]
    assert JobQueue(sqlite_workspace).get(job_id).spec["input_size"] == 320
    for bad, says in (("big", "input size"), ("100", "input_size")):
        refused = editor.post("/automl", data={**form, "input_size": bad})
        assert refused.status_code == 422 and says in refused.text, refused.text


def test_progress_page_shows_the_live_leaderboard_then_the_winner(as_role, sqlite_workspace, tmp_path):
    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs
    from modelyard.train.tracking import RunStore

    _dataset(sqlite_workspace, tmp_path)
    job = JobQueue(sqlite_workspace).submit("automl.train", {"dataset": "tab@1", "name": "m"})
    runs = RunStore(sqlite_workspace)
    run = runs.create("automl-m", experiment="automl", params={"metric": None}, job_id=job.id)
    trials = [{"trial": 0, "family": "linear", "params": {"C": 1}, "score": 0.8, "latency_ms": 0.1, "accepted": True},
              {"trial": 1, "family": "lightgbm", "params": {"n": 5}, "score": 0.9, "latency_ms": 0.4,
               "accepted": True},
              {"trial": 2, "family": "<b>x</b>", "params": {}, "score": 0.95, "latency_ms": 9.0, "accepted": False}]
    runs.log_lines(run.id, [json.dumps(t) for t in trials])
    viewer = as_role("viewer")
    live = viewer.get(f"/automl/{job.id}", headers={"HX-Request": "true"})
    assert live.status_code == 200 and "<!doctype" not in live.text and 'hx-trigger="every 1s"' in live.text
    order = [live.text.index(f) for f in ("lightgbm", "linear", "&lt;b&gt;x&lt;/b&gt;")]
    assert order == sorted(order) and "over latency limit" in live.text
    result = {"model": "m@1", "dataset": "tab@1", "metric": "accuracy", "score": 0.9, "higher_is_better": True,
              "latency_ms": 0.4, "winner": {"family": "lightgbm"}, "leaderboard": trials, "trials": 3,
              "seconds": 3.0, "stop_reason": "budget", "run": run.id}
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(status="succeeded", result=result))
    done = viewer.get(f"/automl/{job.id}")
    assert 'href="/models/m/versions/1">m@1</a>' in done.text and "every 1s" not in done.text
    assert as_role("editor").get(f"/automl/{job.id}").text.count("Evaluate the winner") == 1
