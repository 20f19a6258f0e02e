"""``modelyard label ...`` as a user runs it (in-process through the real entry point): a job from a folder of
images, the queue, proposals, labels, team, review, stats and publish; one-line errors."""

from __future__ import annotations

import json

import pytest

from labelfixtures import colour_folder
from modelyard.cli.main import main


@pytest.mark.slow
def test_label_a_folder_of_images_to_a_published_version(tmp_path, capsys):
    home = tmp_path / "home"

    def run(*args: str, code: int = 0) -> str:
        got = main(["--home", str(home), *args])
        out = capsys.readouterr()
        assert got == code, (got, out.out, out.err)
        if code:
            lines = [line for line in out.err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.err, out.err
            return lines[0]
        return out.out

    folder = colour_folder(tmp_path / "colours", per_class=2)
    job = json.loads(run("label", "create", "c1", "--task", "classification", "--classes", "red,green",
                         "--classes", "blue", "--images", str(folder), "--json"))
    assert job["items"] == 6 and job["classes"] == ["red", "green", "blue"] and job["owner"] == "local"
    assert "model 'colours' not found" in run("label", "propose", "c1", "--model", "colours", "--no-wait", code=1)
    assert "unknown class 'zebra'" in run("label", "annotate", "c1", "red/0.png", "--label", "zebra", code=2)
    assert "expected x1,y1,x2,y2,label" in run("label", "annotate", "c1", "red/0.png", "--box", "1,2,3", code=2)
    saved = run("label", "annotate", "c1", "red/0.png", "--label", "red", "--seconds", "2")
    assert "red/0.png: labeled, red (manual)" in saved
    page = json.loads(run("label", "items", "c1", "--state", "labeled", "--json"))
    assert page["total"] == 1 and page["items"][0]["seconds"] == 2.0
    exported = json.loads(run("label", "export", "c1", "--format", "csv", "-o", str(tmp_path / "out"), "--json"))
    assert exported["items"] == 1 and exported["format"] == "csv"
    imported = json.loads(run("label", "import", "c1", str(tmp_path / "out"), "--as-proposals", "--json"))
    assert imported == {"schema": "modelyard.labeling-import/1", "imported": 0, "skipped": 1}  # labeled already
    assert "unknown annotation format 'tiff'" in run("label", "export", "c1", "--format", "tiff", "-o",
                                                     str(tmp_path / "x"), code=2)
    team = json.loads(run("label", "assign", "c1", "--labeler", "alice", "--reviewer", "rita", "--count", "2",
                          "--json"))
    assert team["assignment"] == {"schema": "modelyard.labeling-assignment/1", "assigned": {"alice": 2}, "total": 2}
    assert "pre-labeling: not enough data" in run("label", "stats", "c1")
    published = run("label", "publish", "c1", "--dataset", "colours")
    assert "published colours@1 (V001): 1 items, 1 job" in published
