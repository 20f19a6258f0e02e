"""Labeling pages: jobs list and create (bad input shown on the page, escaped), the job page with team figures and
publish, the queue's filters, sorts and paging, the editor's save (CSRF, seconds, proposals, errors as JSON) and the
review page."""

from __future__ import annotations

import io
import re
import zipfile

from console_support import csrf_of


def _png(shade: int, size=(32, 24)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (shade % 256, 40, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def _job_on_files(workspace, name: str, count: int, task: str = "detection", owner: str = "editor-user"):
    from modelyard.data.labeling import LabelingStore
    from modelyard.server.auth import Principal

    files = {f"img/{i:04d}.png": workspace.blobs.put_bytes(_png(i)).digest for i in range(count)}
    store = LabelingStore(workspace)
    store.create(name, Principal(owner, "editor"), task=task, classes=["cat", "dog", "fox"], files=files)
    return store


def _editor_data(html: str) -> dict:
    import html as htmllib
    import json

    match = re.search(r"data-editor='([^']*)'", html)
    assert match, "no editor data on the page"
    return json.loads(htmllib.unescape(match.group(1)))


def test_create_a_job_on_a_dataset_version_and_see_it_listed(as_role, sqlite_workspace):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for label in ("red", "blue"):
            for i in range(6):
                zf.writestr(f"{label}/{i}.png", _png(i * 30 + (100 if label == "red" else 0)))
    editor = as_role("editor")
    form = editor.get("/datasets/import")
    made = editor.post("/datasets/import", data={"csrf": csrf_of(form.text), "name": "imgs"},
                       files={"file": ("imgs.zip", archive.getvalue(), "application/zip")}, follow_redirects=False)
    assert made.status_code == 303
    listing = editor.get("/labeling")
    assert listing.status_code == 200 and "No labeling jobs yet." in listing.text and "imgs@1" in listing.text
    created = editor.post("/labeling", data={"csrf": csrf_of(listing.text), "name": "colours", "task":
                                             "classification", "dataset": "imgs@1", "classes": "",
                                             "description": "<b>be careful</b>"}, follow_redirects=False)
    assert created.status_code == 303 and created.headers["location"].startswith("/labeling/colours?")
    job = editor.get("/labeling/colours")
    assert "0 of 12 labeled" in job.text and "&lt;b&gt;be careful&lt;/b&gt;" in job.text
    assert 'href="/datasets/imgs/versions/1"' in job.text and "not enough data" in job.text
    assert ">colours</a>" in editor.get("/labeling").text

    # bad input: a message on the page, escaped, nothing stored
    bad = editor.post("/labeling", data={"csrf": csrf_of(listing.text), "name": "<script>x</script>", "task":
                                         "classification", "dataset": "imgs@1"})
    assert bad.status_code == 422 and 'id="labeling-error"' in bad.text and "<script>x</script>" not in bad.text
    missing = editor.post("/labeling", data={"csrf": csrf_of(listing.text), "name": "other", "task": "detection",
                                             "dataset": "nope@3"})
    assert missing.status_code == 404 and 'id="labeling-error"' in missing.text
    assert 'value="other"' in missing.text  # the form keeps what was typed
    no_csrf = editor.post("/labeling", data={"name": "x2", "task": "classification", "dataset": "imgs@1"})
    assert no_csrf.status_code == 403
    viewer = as_role("viewer")
    assert 'id="create-job"' not in viewer.get("/labeling").text
    refused = viewer.post("/labeling", data={"csrf": csrf_of(viewer.get("/labeling").text), "name": "v",
                                             "task": "classification", "dataset": "imgs@1"})
    assert refused.status_code == 403
    from modelyard.data.labeling import LabelingStore

    assert [j.name for j in LabelingStore(sqlite_workspace).list()] == ["colours"]


def test_queue_filters_sorts_and_pages(as_role, sqlite_workspace):
    from modelyard.server.auth import Principal

    store = _job_on_files(sqlite_workspace, "q", 60, task="classification")
    store.set_priorities("q", Principal("editor-user", "editor"),
                         {f"img/{i:04d}.png": {"uncertainty": i / 200, "hard": i % 10 == 0} for i in range(60)})
    for i in range(5):
        store.annotate("q", f"img/{i:04d}.png", Principal("editor-user", "editor"), labels=["dog"], seconds=2)
    editor = as_role("editor")
    first = editor.get("/labeling/q/queue")
    assert first.status_code == 200 and "60 items · page 1 of 2" in first.text
    assert first.text.count('<tr><td class="num muted">') == 50
    last = editor.get("/labeling/q/queue?page=2")
    assert last.text.count('<tr><td class="num muted">') == 10 and "img/0059.png" in last.text
    uncertain = editor.get("/labeling/q/queue?state=unlabeled&sort=-uncertainty")
    rows = re.findall(r">(img/\d{4}\.png)</a>", uncertain.text)
    assert "<span>55 items" in uncertain.text and rows[:3] == ["img/0059.png", "img/0058.png", "img/0057.png"]
    hard = editor.get("/labeling/q/queue?hard=true&state=unlabeled")
    assert "<span>5 items" in hard.text and "img/0050.png" in hard.text  # 0, 10, ..., 50 minus img/0000 (labeled)
    labeled = editor.get("/labeling/q/queue?state=labeled")
    assert "<span>5 items" in labeled.text and ">dog<" in labeled.text
    # the filter form's empty assignee means anyone, "-" nobody
    store.set_member("q", Principal("editor-user", "editor"), "ann", "labeler")
    store.assign("q", Principal("editor-user", "editor"), ["ann"], count=3)
    anyone = editor.get("/labeling/q/queue?state=unlabeled&assignee=")
    assert "<span>55 items" in anyone.text
    nobody = editor.get("/labeling/q/queue?state=unlabeled&assignee=-")
    assert "<span>52 items" in nobody.text and 'value="-"' in nobody.text
    mine = editor.get("/labeling/q/queue?assignee=ann&state=unlabeled")
    assert "<span>3 items" in mine.text
    # the editor opened from a filtered queue walks that queue
    page = editor.get("/labeling/q/edit?state=unlabeled&sort=-uncertainty&at=1")
    data = _editor_data(page.text)
    assert data["item"]["item"] == "img/0058.png" and data["task"] == "classification"
    assert data["next_url"].endswith("at=2") and data["prev_url"].endswith("at=0")
    assert data["after_save_url"].endswith("at=1")  # the saved item leaves the 'unlabeled' queue
    # unknown filter values are dropped, not guessed
    assert editor.get("/labeling/q/queue?state=bogus&sort=evil&page=x").status_code == 200


def test_editor_saves_boxes_with_seconds_and_accepts_a_proposal(as_role, sqlite_workspace):
    from modelyard.data.annotations import Annotated, Box
    from modelyard.data.labeling.model import Proposal

    store = _job_on_files(sqlite_workspace, "boxes", 3)
    store.record_proposals("boxes", [Proposal(Annotated.make("img/0001.png", 32, 24, [Box(2, 2, 20, 20, "fox",
                                                                                               0.9)]), 0.9)])
    editor = as_role("editor")
    page = editor.get("/labeling/boxes/edit")
    assert page.status_code == 200 and 'id="canvas"' in page.text and "/static/console/labeling.js" in page.text
    data = _editor_data(page.text)
    assert data["image_url"] == "/labeling/boxes/image?id=img%2F0000.png"
    image = editor.get(data["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    headers = {"X-CSRF-Token": data["csrf"]}
    saved = editor.post("/labeling/boxes/annotations", json={"item": "img/0000.png", "boxes": [[1, 2, 10, 12, "dog"]],
                                                             "seconds": 3.25}, headers=headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["state"] == "labeled" and saved.json()["seconds"] == 3.25
    assert store.item("boxes", "img/0000.png").annotation["boxes"] == [[1.0, 2.0, 10.0, 12.0, "dog"]]
    # the proposal is accepted with one key (accept_proposal)
    accepted = editor.post("/labeling/boxes/annotations", json={"item": "img/0001.png", "accept_proposal": True,
                                                                "seconds": 0.8}, headers=headers)
    assert accepted.status_code == 200 and accepted.json()["source"] == "proposal_accepted"
    proposed = _editor_data(editor.get("/labeling/boxes/edit?at=1").text)
    assert proposed["item"]["proposal"]["boxes"][0][4] == "fox"
    # errors come back as the API's JSON for the editor to show; nothing changes
    outside = editor.post("/labeling/boxes/annotations", json={"item": "img/0002.png",
                                                               "boxes": [[100, 100, 120, 120, "dog"]]}, headers=headers)
    assert outside.status_code == 422 and "img/0002.png" in outside.json()["error"]["message"]
    zebra = {"item": "img/0002.png", "boxes": [[1, 1, 5, 5, "<b>zebra</b>"]]}
    unknown = editor.post("/labeling/boxes/annotations", json=zebra, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_input"
    shape = editor.post("/labeling/boxes/annotations", json={"item": "img/0002.png", "seconds": -1}, headers=headers)
    assert shape.status_code == 422 and shape.json()["error"]["message"].startswith("seconds")
    assert editor.post("/labeling/boxes/annotations", json={"item": "img/0002.png", "boxes": []}).status_code == 403
    assert store.item("boxes", "img/0002.png").state == "unlabeled"
    viewer = as_role("viewer")
    refused = viewer.post("/labeling/boxes/annotations", json={"item": "img/0002.png", "boxes": [[1, 1, 5, 5, "dog"]]},
                          headers={"X-CSRF-Token": csrf_of(viewer.get("/labeling").text)})
    assert refused.status_code == 403
    assert editor.get("/labeling/boxes/image?id=nope.png").status_code == 404


def test_review_rates_and_rejects_then_publish_links_the_new_version(as_role, sqlite_workspace):
    from modelyard.data.datasets import DatasetStore
    from modelyard.server.auth import Principal

    store = _job_on_files(sqlite_workspace, "rv", 6, task="classification")
    owner = Principal("editor-user", "editor")
    store.set_member("rv", owner, "labeler-x", "labeler")
    store.set_member("rv", owner, "admin-user", "reviewer")
    for i in range(6):
        store.annotate("rv", f"img/{i:04d}.png", Principal("labeler-x", "editor"), labels=["cat"], seconds=1.5)
    editor = as_role("editor")
    job = editor.get("/labeling/rv")
    team = editor.post("/labeling/rv/members", data={"csrf": csrf_of(job.text), "principal": "bob", "role":
                                                     "labeler"}, follow_redirects=True)
    assert "Team updated: bob labeler." in team.text and "bob (labeler)" in team.text
    assigned = editor.post("/labeling/rv/assign", data={"csrf": csrf_of(job.text), "labelers": "bob", "count": "x"},
                           follow_redirects=True)
    assert "count: a whole number" in assigned.text and 'id="labeling-error"' in assigned.text
    outsider = as_role("viewer")
    assert 'action="/labeling/rv/members"' not in outsider.get("/labeling/rv").text
    assert "labeler-x" in job.text and "not enough data" in job.text and 'id="publish-form"' in job.text
    reviewer = as_role("admin")
    review = reviewer.get("/labeling/rv/review")
    assert "Nothing in review." in review.text and "<option>labeler-x</option>" in review.text
    neither = reviewer.post("/labeling/rv/review-sample", data={"csrf": csrf_of(review.text), "labeler": "labeler-x"},
                            follow_redirects=True)
    assert "give a percentage or a count" in neither.text
    drawn = reviewer.post("/labeling/rv/review-sample", data={"csrf": csrf_of(review.text), "labeler": "labeler-x",
                                                              "fraction": "50"}, follow_redirects=True)
    assert "3 items drawn into review." in drawn.text and drawn.text.count('name="outcome" value="reject"') == 3
    item = re.search(r'name="item" value="([^"]+)"', drawn.text).group(1)
    rejected = reviewer.post("/labeling/rv/reviews", data={"csrf": csrf_of(review.text), "item": item, "outcome":
                                                           "reject", "rating": "C", "comment": "<i>a fox</i>"},
                             follow_redirects=True)
    assert f"{item}: rejected." in rejected.text and rejected.text.count('name="outcome" value="reject"') == 2
    assert store.item("rv", item).state == "rejected" and store.item("rv", item).review["rating"] == "C"
    # the labeler sees the comment, escaped, in the editor
    rejected_index = int(item[4:8])
    page = editor.get(f"/labeling/rv/edit?at={rejected_index}")
    assert "&lt;i&gt;a fox&lt;/i&gt;" in page.text
    stats = editor.get("/labeling/rv")
    assert "0.0 %" in stats.text or "0 %" in stats.text  # labeler-x: accuracy 0 % (one reject)
    # publish: a job on uploaded images names its dataset
    no_name = editor.post("/labeling/rv/publish", data={"csrf": csrf_of(job.text), "mode": "overwrite"},
                          follow_redirects=True)
    assert 'id="labeling-error"' in no_name.text and DatasetStore(sqlite_workspace).list() == []
    published = editor.post("/labeling/rv/publish", data={"csrf": csrf_of(job.text), "mode": "keep",
                                                          "dataset": "rv-labels"}, follow_redirects=False)
    assert published.status_code == 303
    after = editor.get(published.headers["location"])
    assert "Published rv-labels@1." in after.text and 'href="/datasets/rv-labels/versions/1"' in after.text
    assert DatasetStore(sqlite_workspace).get("rv-labels@1").kind == "image-classification"
    viewer = as_role("viewer")
    assert 'id="publish-form"' not in viewer.get("/labeling/rv").text
    assert viewer.post("/labeling/rv/publish", data={"csrf": csrf_of(viewer.get("/labeling").text),
                                                     "dataset": "v2"}).status_code == 403


def test_text_job_shows_the_text_escaped_and_labels_by_class(as_role, sqlite_workspace):
    csv = "text,label\n" + "".join(f"\"review {i} <script>alert({i})</script>\",{'pos' if i % 2 else 'neg'}\n"
                                   for i in range(8))
    editor = as_role("editor")
    form = editor.get("/datasets/import")
    made = editor.post("/datasets/import", data={"csrf": csrf_of(form.text), "name": "reviews",
                                                 "kind": "text-classification"},
                       files={"file": ("r.csv", csv.encode(), "text/csv")}, follow_redirects=False)
    assert made.status_code == 303, made.text
    created = editor.post("/labeling", data={"csrf": csrf_of(form.text), "name": "tx", "task": "text",
                                             "dataset": "reviews@1"}, follow_redirects=False)
    assert created.status_code == 303
    page = editor.get("/labeling/tx/edit")
    assert 'id="text-item"' in page.text and "<script>alert(" not in page.text
    assert "review 0 &lt;script&gt;alert(0)&lt;/script&gt;" in page.text
    assert "<kbd>1</kbd> neg" in page.text and "<kbd>2</kbd> pos" in page.text
    data = _editor_data(page.text)
    assert data["image_url"] is None and data["item"]["existing"]["labels"] == ["neg"]
    saved = editor.post("/labeling/tx/annotations", json={"item": data["item"]["item"], "labels": ["pos"],
                                                          "seconds": 1.2}, headers={"X-CSRF-Token": data["csrf"]})
    assert saved.status_code == 200 and saved.json()["annotation"]["labels"] == ["pos"]
    two = editor.post("/labeling/tx/annotations", json={"item": data["item"]["item"], "labels": ["pos", "neg"]},
                      headers={"X-CSRF-Token": data["csrf"]})
    assert two.status_code == 422


def test_pre_labeling_is_queued_from_the_job_page(as_role, sqlite_workspace, tmp_path):
    from console_support import register_linear

    from modelyard.jobs.queue import JobQueue

    _job_on_files(sqlite_workspace, "pl", 2, owner="admin-user")
    register_linear(sqlite_workspace, tmp_path, "tiny")
    admin = as_role("admin")
    page = admin.get("/labeling/pl")
    assert 'id="propose-form"' in page.text
    unknown = admin.post("/labeling/pl/proposals", data={"csrf": csrf_of(page.text), "model": "nope@1"},
                         follow_redirects=True)
    assert 'id="labeling-error"' in unknown.text and "nope" in unknown.text
    assert JobQueue(sqlite_workspace).list(kind="label.propose")[0] == []
    queued = admin.post("/labeling/pl/proposals", data={"csrf": csrf_of(page.text), "model": "tiny@1", "limit": "1"},
                        follow_redirects=False)
    assert queued.status_code == 303 and queued.headers["location"].startswith("/jobs/job_")
    job = JobQueue(sqlite_workspace).get(queued.headers["location"].split("?")[0].rsplit("/", 1)[1])
    assert job.kind == "label.propose" and job.spec["job"] == "pl" and job.spec["limit"] == 1
    editor = as_role("editor")  # not the job's owner
    token = csrf_of(editor.get("/labeling").text)
    refused = editor.post("/labeling/pl/proposals", data={"csrf": token, "model": "tiny@1"}, follow_redirects=True)
    assert 'id="labeling-error"' in refused.text and "editor-user" in refused.text
    assert len(JobQueue(sqlite_workspace).list(kind="label.propose")[0]) == 1


def test_job_page_draws_the_active_learning_curves_of_its_latest_round(as_role, sqlite_workspace):
    import sqlalchemy as sa

    from modelyard.jobs.queue import JobQueue
    from modelyard.store.schema import jobs

    _job_on_files(sqlite_workspace, "al", 2, task="classification")
    editor = as_role("editor")
    assert "No active-learning round yet" in editor.get("/labeling/al").text
    queued = JobQueue(sqlite_workspace).submit("label.suggest", {"labeling_job": "al", "batch": 2}, owner="editor-user")
    # the stored result as a finished label.suggest round records it (schema modelyard.label-suggest/1)
    result = {"schema": "modelyard.label-suggest/1", "labeling_job": "al", "round": 3, "strategy": "margin",
              "learning_curve": {"strategy": [{"labels": 20, "score": 0.5}, {"labels": 30, "score": 0.7}],
                                 "random": [{"round": 1, "labels": 20, "score": 0.5},
                                            {"round": 3, "labels": 22, "score": 0.52}]},
              "gain": {"fallback": False, "advantage": 0.12}}
    with sqlite_workspace.engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == queued.id).values(status="succeeded", result=result))
    page = editor.get("/labeling/al").text
    assert f'href="/jobs/{queued.id}"' in page and "Round 3" in page and "strategy margin" in page
    assert "margin (all labels)" in page and "random control arm" in page and "advantage +0.120" in page
    assert page.count('class="line c') == 2
