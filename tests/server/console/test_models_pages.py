"""Models and evaluations pages: versions with paging, alias moves, signature, lineage, deploy/evaluate forms."""

from __future__ import annotations

from console_support import csrf_of, register_linear

XSS = "<img src=x onerror=alert(1)>"


def test_models_list_version_page_and_alias_move(as_role, sqlite_workspace, tmp_path):
    from modelyard.registry.versions import ModelRegistry

    for _ in range(3):
        register_linear(sqlite_workspace, tmp_path, "mm", description=XSS, tags={"note": XSS},
                        lineage={"dataset": "iris@1", "run": "run_x", "job": {"id": "job_y"}})
    editor = as_role("editor")
    listing = editor.get("/models")
    assert ">mm</a>" in listing.text and XSS not in listing.text
    model = editor.get("/models/mm?per=5")
    assert "v3" in model.text and "Move an alias" in model.text
    moved = editor.post("/models/mm/aliases", data={"csrf": csrf_of(model.text), "alias": "production",
                                                    "version": "2"}, follow_redirects=False)
    assert moved.status_code == 303
    assert ModelRegistry(sqlite_workspace).get_version("mm@production").version == 2
    version = editor.get("/models/mm/versions/production")
    assert version.status_code == 200 and "mm@2" in version.text
    assert 'href="/datasets/iris">dataset iris@1</a>' in version.text and 'href="/runs/run_x"' in version.text
    assert 'href="/jobs/job_y"' in version.text and "not deployed" in version.text
    assert XSS not in version.text and "&lt;img src=x onerror=alert(1)&gt;" in version.text
    assert "Deploy mm@2" in version.text


def test_viewer_cannot_move_aliases_or_deploy(as_role, sqlite_workspace, tmp_path):
    from modelyard.deploy.services import ServiceStore
    from modelyard.registry.versions import ModelRegistry

    register_linear(sqlite_workspace, tmp_path, "mm")
    viewer = as_role("viewer")
    page = viewer.get("/models/mm/versions/1")
    assert "Deploy mm@1" not in page.text and "Move an alias" not in viewer.get("/models/mm").text
    token = csrf_of(page.text)
    assert viewer.post("/models/mm/aliases", data={"csrf": token, "alias": "p", "version": "1"}).status_code == 403
    assert viewer.post("/models/mm/versions/1/deploy", data={"csrf": token, "service": "s"}).status_code == 403
    assert ModelRegistry(sqlite_workspace).get_model("mm")["aliases"] == {}
    assert ServiceStore(sqlite_workspace).list() == []


def test_evaluate_form_queues_the_same_job_as_the_api(as_role, sqlite_workspace, tmp_path):
    from modelyard.data.datasets import DatasetStore
    from modelyard.jobs.queue import JobQueue

    register_linear(sqlite_workspace, tmp_path, "mm")
    table = tmp_path / "iris.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    DatasetStore(sqlite_workspace).import_path(table, "iris")
    editor = as_role("editor")
    page = editor.get("/models/mm/versions/1")
    unknown = editor.post("/models/mm/versions/1/evaluate", data={"csrf": csrf_of(page.text), "data": "ghost@1",
                                                                  "split": "validation"}, follow_redirects=False)
    assert unknown.status_code == 404 and "dataset &#39;ghost&#39; not found" in unknown.text
    answer = editor.post("/models/mm/versions/1/evaluate", data={"csrf": csrf_of(page.text), "data": "iris@1",
                                                                 "split": "validation"}, follow_redirects=False)
    job_id = answer.headers["location"].split("?")[0].rsplit("/", 1)[-1]
    job = JobQueue(sqlite_workspace).get(job_id)
    assert job.kind == "evaluate" and job.spec == {"model": "mm@1", "dataset": "iris@1", "split": "validation"}
    assert "waiting for the evaluation" in editor.get(f"/evaluations/{job_id}").text
    assert job_id in editor.get("/evaluations").text


def test_evaluation_page_renders_a_report(as_role, sqlite_workspace, tmp_path):
    import sqlalchemy as sa

    from modelyard.data.datasets import DatasetStore
    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    register_linear(sqlite_workspace, tmp_path, "m")
    table = tmp_path / "d.csv"
    table.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{'xy'[i % 2]}\n" for i in range(40)))
    DatasetStore(sqlite_workspace).import_path(table, "d")
    job = JobQueue(sqlite_workspace).submit("evaluate", {"model": "m@1", "data": "d@1"})
    result = {"model": "m@1", "dataset": "d@1", "split": "all", "rows": 10, "metrics": {"accuracy": 0.9},
              "classes": ["a", XSS], "confusion_matrix": [[4, 1], [0, 5]],
              "per_class": {"a": {"precision": 1.0, "recall": 0.8}, XSS: {"precision": 0.83, "recall": 1.0}},
              "curves": {"roc": [{"class": XSS, "auc": 0.95, "fpr": [0, 0.2, 1], "tpr": [0, 0.9, 1]}],
                         "pr": [{"class": XSS, "average_precision": 0.9, "recall": [0, 1], "precision": [1, 0.8]}]},
              "calibration": [{"confidence": 0.5, "accuracy": 0.6}, {"confidence": 0.9, "accuracy": 0.85}]}
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(status="succeeded", result=result))
    page = as_role("viewer").get(f"/evaluations/{job.id}")
    assert page.status_code == 200 and page.text.count("<svg") == 3
    assert '<td class="h5">5</td>' in page.text and XSS not in page.text


def test_evaluation_page_renders_a_detection_report(as_role, sqlite_workspace, tmp_path):
    import sqlalchemy as sa

    from modelyard.data.datasets import DatasetStore
    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    register_linear(sqlite_workspace, tmp_path, "det")
    table = tmp_path / "boxes.csv"
    table.write_text("a,label\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(20)))
    DatasetStore(sqlite_workspace).import_path(table, "boxes")  # the submit check wants the names to exist
    job = JobQueue(sqlite_workspace).submit("evaluate", {"model": "det@1", "data": "boxes@1"})
    result = {"model": "det@1", "dataset": "boxes@1", "split": "validation", "rows": 3, "task": "detection",
              "metrics": {"map50": 0.75, "map75": 0.75, "map50_95": 0.7},
              "per_class": {XSS: {"ap50": 0.5, "ap75": 0.5, "ap50_95": 0.4, "ground_truth": 2, "predictions": 3,
                                  "best_f1": {"threshold": 0.72, "f1": 0.67, "precision": 1.0, "recall": 0.5}},
                            "dog": {"ap50": 1.0, "ap75": 1.0, "ap50_95": 1.0, "ground_truth": 2, "predictions": 3,
                                    "best_f1": None}},
              "curves": [{"class": XSS, "ap50": 0.5, "recall": [0.5, 0.5], "precision": [1.0, 0.5]}],
              "suggested_threshold": {"threshold": 0.72, "f1": 0.75, "precision": 0.75, "recall": 0.75},
              "confusion_threshold": 0.72, "confusion_classes": [XSS, "dog", "background"],
              "confusion_matrix": [[1, 0, 1], [0, 2, 0], [0, 1, 0]]}
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job.id).values(status="succeeded", result=result))
    page = as_role("viewer").get(f"/evaluations/{job.id}")
    assert page.status_code == 200, page.text
    assert page.text.count("<svg") == 1 and "Precision-recall at IoU 0.5" in page.text
    assert "Suggested score threshold <b>0.72</b>" in page.text and "background" in page.text
    assert '<td class="h5">2</td>' in page.text and XSS not in page.text
    assert "<th class=\"num\">threshold</th>" in page.text and "3 images" in page.text


def test_a_detector_version_page_says_how_it_answers(as_role, sqlite_workspace, tmp_path):
    from modelyard.registry.versions import ModelRegistry
    from support import detector_onnx

    stored = {"model.onnx": "sha256:" + sqlite_workspace.blobs.put_file(detector_onnx(tmp_path / "d.onnx")).digest}
    ModelRegistry(sqlite_workspace).create_version(
        "det", stored, "model.onnx", "onnx", preprocessing={"size": [32, 32], "resize": "letterbox"},
        task={"type": "detection", "classes": ["cat", XSS], "postprocess": {"kind": "boxes"}})
    page = as_role("viewer").get("/models/det/versions/1")
    assert page.status_code == 200
    assert "Detector: <b>boxes</b> post-processing, score threshold 0.25" in page.text
    assert "letterboxed to 32x32" in page.text and "2 classes: cat" in page.text and XSS not in page.text
