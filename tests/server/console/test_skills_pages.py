"""Skills pages: the market and one skill (models with hashes); editors can measure, viewers only read."""

from __future__ import annotations

from console_support import csrf_of


def test_skills_pages_list_show_and_measure(as_role):
    viewer = as_role("viewer")
    market = viewer.get("/skills")
    assert market.status_code == 200 and "speech-recognition" in market.text and "not measured" in market.text
    ocr = viewer.get("/skills/ocr")
    assert ocr.status_code == 200 and "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f" in ocr.text
    assert "Measure" not in ocr.text
    editor = as_role("editor")
    page = editor.get("/skills/sentiment")
    measured = editor.post("/skills/sentiment/measure", data={"csrf": csrf_of(page.text)}, follow_redirects=True)
    assert measured.status_code == 200 and "self-check passed" in measured.text
    assert "latency_ms" in measured.text
    assert viewer.get("/skills/nope").status_code == 404


def test_deploy_a_skill_as_a_service_from_its_page(as_role, sqlite_workspace, monkeypatch):
    from modelyard.deploy import supervisor
    from modelyard.deploy.services import ServiceStore

    # the desired state only: no supervisor daemon (the service's processes are the slow end-to-end test's)
    monkeypatch.setattr(supervisor, "ensure_running", lambda *args, **kwargs: True)
    editor = as_role("editor")
    page = editor.get("/skills/sentiment")
    assert "Deploy as service" in page.text
    csrf = csrf_of(page.text)
    refused = editor.post("/skills/sentiment/deploy", data={"csrf": csrf, "config": '{"threshold": 5}'})
    assert refused.status_code == 422 and "global config: threshold" in refused.text
    assert editor.post("/skills/sentiment/deploy", data={"csrf": csrf, "config": "{"}).status_code == 422
    assert editor.post("/skills/nope/deploy", data={"csrf": csrf}).status_code == 404
    assert editor.post("/skills/sentiment/deploy", data={"service": "senti"}).status_code == 403  # no CSRF token
    assert ServiceStore(sqlite_workspace).list() == []  # nothing deployed by a refused form
    done = editor.post("/skills/sentiment/deploy", data={"csrf": csrf, "service": "senti", "replicas": "2",
                                                         "config": '{"threshold": 0.5}'}, follow_redirects=True)
    assert done.status_code == 200 and "Deploying skill sentiment as service senti" in done.text
    ServiceStore(sqlite_workspace).mark_live("senti", 1)  # what the supervisor does once its replicas are ready
    shown = editor.get("/services/senti").text
    assert 'skill <a href="/skills/sentiment">skill:sentiment@' in shown and "Traffic split" not in shown
    assert "&#34;text&#34;" in shown or '"text"' in shown  # the try-it form starts from a sentence
    service = ServiceStore(sqlite_workspace).get("senti")
    assert service.replicas == 2 and service.desired.config == {"skill_config": {"threshold": 0.5}}
    viewer = as_role("viewer")
    assert "Deploy as service" not in viewer.get("/skills/sentiment").text
    assert viewer.post("/skills/sentiment/deploy", data={"csrf": csrf_of(viewer.get("/skills").text)}).status_code \
        == 403
