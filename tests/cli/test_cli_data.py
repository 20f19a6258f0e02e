"""``modelyard data ...`` and ``modelyard runs ...`` as a user runs them: JSON schemas, one-line errors."""

import json

import pytest

from support import run_cli


def _one_line_error(proc, code, text):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_data_commands(tmp_path):
    home = tmp_path / "w"
    csv_path = tmp_path / "wine.csv"
    run_cli("data", "sample", "wine", "-o", str(csv_path), check=True)
    version = json.loads(run_cli("data", "import", str(csv_path), "--name", "wine", "--json", home=home,
                                 check=True).stdout)
    assert version["schema"] == "modelyard.dataset-version/1" and version["ref"] == "wine@1"
    human = run_cli("data", "stats", "wine@1", home=home, check=True).stdout
    assert "class_0" in human and "ready for training" in human
    stats = json.loads(run_cli("data", "stats", "wine@1", "--json", home=home, check=True).stdout)
    assert stats["stats"]["rows"] == 178
    prep = json.loads(run_cli("data", "prep", "wine@1", "--drop-columns", "proline", "--json", home=home,
                              check=True).stdout)
    assert prep["versions"][0]["lineage"]["parent"] == "wine@1"
    assert "wine@2" in run_cli("data", "show", "wine", home=home, check=True).stdout
    assert json.loads(run_cli("data", "list", "--json", home=home, check=True).stdout)["items"][0]["versions"] == 2
    run_cli("data", "export", "wine@2", "-o", str(tmp_path / "out"), home=home, check=True)
    assert "proline" not in (tmp_path / "out" / "data.csv").read_text().splitlines()[0]

    bad = tmp_path / "single.csv"
    bad.write_text("a,label\n1,x\n2,x\n")
    _one_line_error(run_cli("data", "import", str(bad), "--name", "s", home=home), 2, "has a single class ('x')")
    _one_line_error(run_cli("data", "show", "nope@1", home=home), 1, "dataset 'nope' not found")
    _one_line_error(run_cli("data", "sample", "mnist", "-o", str(tmp_path / "x.csv")), 2, "sample 'mnist'")
    _one_line_error(run_cli("data", "prep", "wine@1", "--resize", "abc", home=home), 2, "expected WIDTHxHEIGHT")
    _one_line_error(run_cli("data", "import", str(tmp_path / "missing.csv"), "--name", "m", home=home), 2,
                    "no such file or folder")


@pytest.mark.slow
def test_runs_commands(tmp_path):
    import modelyard

    home = tmp_path / "w"
    with modelyard.run("one", experiment="cli", params={"lr": 0.1}, home=home) as first:
        first.log_metric("acc", 0.8)
    with modelyard.run("two", experiment="cli", params={"lr": 0.2}, home=home) as second:
        second.log_metric("acc", 0.9)
    listed = json.loads(run_cli("runs", "list", "--experiment", "cli", "--json", home=home, check=True).stdout)
    assert [r["name"] for r in listed["items"]] == ["two", "one"]
    shown = run_cli("runs", "show", first.id, home=home, check=True).stdout
    assert "param  lr = 0.1" in shown and "metric acc = 0.8 (1 steps)" in shown
    compared = run_cli("runs", "compare", first.id, second.id, home=home, check=True).stdout
    assert "0.9 *" in compared
    _one_line_error(run_cli("runs", "show", "run_nope", home=home), 1, "run run_nope not found")


@pytest.mark.slow
def test_prep_dedupe_near_shows_what_it_would_remove_first(tmp_path):
    import io

    from PIL import Image

    from modelyard.data.samples import load_mnist

    x, y = load_mnist()["test"]
    root = tmp_path / "digits"
    for index in range(40):
        (root / str(y[index])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[index]).save(root / str(y[index]) / f"{index}.png")
    copy = io.BytesIO()
    Image.fromarray(x[0]).save(copy, format="JPEG", quality=75)
    (root / str(y[0]) / "0.z-copy.jpg").write_bytes(copy.getvalue())
    home = tmp_path / "w"
    run_cli("data", "import", str(root), "--name", "d", home=home, check=True)
    stats = run_cli("data", "stats", "d@1", home=home, check=True).stdout
    assert "near-duplicate pairs 1 (1 image(s) 'prep --dedupe --near' would remove)" in stats
    preview = run_cli("data", "prep", "d@1", "--dedupe", "--near", "--dry-run", home=home, check=True).stdout
    assert f"near-duplicate of {y[0]}/0.png: remove {y[0]}/0.z-copy.jpg" in preview
    assert "d@1: 1 of 41 image(s) would be removed" in preview
    plan = json.loads(run_cli("data", "prep", "d@1", "--dedupe", "--near", "--dry-run", "--json", home=home,
                              check=True).stdout)
    assert plan["schema"] == "modelyard.dedupe-plan/1" and plan["remove"] == [f"{y[0]}/0.z-copy.jpg"]
    unconfirmed = run_cli("data", "prep", "d@1", "--dedupe", "--near", home=home)  # no terminal: no answer
    _one_line_error(unconfirmed, 2, "nothing removed")
    assert "near-duplicate of" in unconfirmed.stdout
    assert json.loads(run_cli("data", "show", "d", "--json", home=home, check=True).stdout)["versions"][-1][
        "version"] == 1
    done = run_cli("data", "prep", "d@1", "--dedupe", "--near", "--yes", home=home, check=True).stdout
    assert "-> d@2 dedupe" in done and "40 items" in done


@pytest.mark.slow
def test_delete_and_blob_gc_commands(tmp_path):
    from modelyard.client import Client
    from modelyard.data.samples import write_tabular_sample

    home = tmp_path / "w"
    # set-up through the SDK (test_data_commands runs 'data sample' and 'data import'): the commands under test
    # are delete and the blob ones
    with Client(home=home) as client:
        client.data.import_path(write_tabular_sample("iris", tmp_path / "iris.csv"), "iris")
    mine = tmp_path / "mine.txt"
    mine.write_text("kept by hand")
    put = json.loads(run_cli("blobs", "put", str(mine), "--json", home=home, check=True).stdout)["items"][0]
    pins = json.loads(run_cli("blobs", "pins", "--json", home=home, check=True).stdout)
    assert [p["digest"] for p in pins["items"]] == [put["digest"]]  # 'blobs put' pins by default
    deleted = run_cli("data", "delete", "iris", "--yes", home=home, check=True).stdout
    assert "deleted iris@1; run 'modelyard blobs gc'" in deleted
    preview = json.loads(run_cli("blobs", "gc", "--dry-run", "--grace-s", "0", "--json", home=home,
                                 check=True).stdout)
    assert preview["dry_run"] and preview["deleted"] == 3 and put["digest"] not in preview["digests"]
    done = run_cli("blobs", "gc", "--grace-s", "0", home=home, check=True).stdout
    assert "deleted 3 blob(s)" in done and "kept 1 in use or pinned" in done
    _one_line_error(run_cli("data", "delete", "iris@1", "--yes", home=home), 1, "dataset 'iris' not found")
    _one_line_error(run_cli("blobs", "unpin", "sha256:" + "0" * 64, home=home), 1, "is not pinned")



def test_detection_import_stats_export(tmp_path):
    """In-process (CliRunner): the commands' printing of detection versions, without a process per command."""
    import io

    from PIL import Image
    from typer.testing import CliRunner

    from modelyard.cli.main import app
    from modelyard.core.errors import InvalidInput
    from modelyard.data import formats
    from modelyard.data.annotations import Annotated, AnnotationSet, Box

    def png(item):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), (0, 120, 0)).save(buffer, "PNG")
        return buffer.getvalue()

    boxes = AnnotationSet("detection", ("leaf",), tuple(
        Annotated.make(f"{i}.png", 40, 30, [Box(5, 5, 35, 25, "leaf")]) for i in range(5)))
    formats.write(boxes, tmp_path / "voc", "voc", png)
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, ["--home", str(tmp_path / "w"), "data", *(str(a) for a in args)])

    imported = cli("import", tmp_path / "voc", "--name", "leaves", "--format", "voc")
    assert imported.exit_code == 0, imported.output
    assert "leaves@1 (V001) object-detection: 5 images with 5 boxes" in imported.output
    human = cli("stats", "leaves@1")
    assert "images 5, boxes 5" in human.output and "ready for training" in human.output
    exported = cli("export", "leaves@1", "--format", "yolo", tmp_path / "yolo")
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "yolo" / "labels" / "3.txt").read_text() == "0 0.500000 0.500000 0.750000 0.666667\n"
    twice = cli("export", "leaves@1", tmp_path / "a", "-o", tmp_path / "b")
    assert isinstance(twice.exception, InvalidInput) and "give the output folder once" in str(twice.exception)
    (tmp_path / "voc" / "JPEGImages" / "2.png").write_bytes(b"not an image")
    refused = cli("import", tmp_path / "voc", "--name", "leaves")
    assert isinstance(refused.exception, InvalidInput) and "2.png: the image 2.png cannot be read" in str(
        refused.exception)
