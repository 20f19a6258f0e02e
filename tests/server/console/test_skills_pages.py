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
