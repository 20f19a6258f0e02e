"""Datasets pages: upload-to-import (and bad uploads changing nothing), versions, stats and check, table samples,
image gallery, preprocessing steps; escaping of user strings."""

from __future__ import annotations

import io
import zipfile

from console_support import csrf_of

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 3 if i % 5 else ''},{'yes' if i % 2 else 'no'}\n".encode()
                                 for i in range(120))


def _import(client, content: bytes, filename: str, name: str, **fields):
    page = client.get("/datasets/import")
    return client.post("/datasets/import", data={"csrf": csrf_of(page.text), "name": name, **fields},
                       files={"file": (filename, content, "application/octet-stream")}, follow_redirects=False)


def test_upload_imports_a_table_and_the_pages_show_it(as_role, sqlite_workspace):
    editor = as_role("editor")
    answer = _import(editor, CSV, "t.csv", "tab")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/datasets/tab/versions/1?")
    page = editor.get("/datasets/tab/versions/1")
    assert page.status_code == 200 and "ready for training" in page.text and "items 1–25 of 120" in page.text
    assert editor.get("/datasets/tab/versions/1?start=100").text.count("<tr><td class=\"muted\">") == 20
    listing = editor.get("/datasets?sort=items&order=desc")
    assert ">tab</a>" in listing.text and "tab@1" in listing.text
    step = editor.post("/datasets/tab/versions/1/steps", data={"csrf": csrf_of(page.text), "op": "impute",
                                                                "strategy": "median"}, follow_redirects=False)
    assert step.status_code == 303 and step.headers["location"].startswith("/datasets/tab/versions/2?")
    versions = editor.get("/datasets/tab")
    assert "from <a href=\"/datasets/tab/versions/1\">tab@1</a> by <code>impute</code>" in versions.text


def test_bad_uploads_get_a_message_on_the_page_and_store_nothing(as_role, sqlite_workspace):
    from modelyard.data.datasets import DatasetStore

    editor = as_role("editor")
    not_a_table = _import(editor, b"\x00\x01garbage", "x.bin", "bad")
    assert not_a_table.status_code in (400, 415, 422) and 'id="import-error"' in not_a_table.text
    unsafe = io.BytesIO()
    with zipfile.ZipFile(unsafe, "w") as zf:
        zf.writestr("../../evil/a.png", b"\x89PNG")
    escaped = _import(editor, unsafe.getvalue(), "evil.zip", "bad")
    assert escaped.status_code in (400, 422) and "evil" in escaped.text and 'id="import-error"' in escaped.text
    bad_name = _import(editor, CSV, "t.csv", "<img src=x onerror=alert(1)>")
    assert "<img src=x" not in bad_name.text and 'id="import-error"' in bad_name.text
    assert DatasetStore(sqlite_workspace).list() == []
    viewer = as_role("viewer")
    assert viewer.get("/datasets/import").status_code == 403
    refused = viewer.post("/datasets/import", data={"csrf": csrf_of(viewer.get("/").text), "name": "v"},
                          files={"file": ("t.csv", CSV, "text/csv")})
    assert refused.status_code == 403 and DatasetStore(sqlite_workspace).list() == []


def test_image_dataset_gallery_serves_thumbnails(as_role, sqlite_workspace, tmp_path):
    from PIL import Image

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for label, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
            for i in range(12):
                buffer = io.BytesIO()
                Image.new("RGB", (16, 16), tuple(max(0, c - i) for c in color)).save(buffer, "PNG")
                zf.writestr(f"{label}/{i}.png", buffer.getvalue())
    editor = as_role("editor")
    assert _import(editor, archive.getvalue(), "imgs.zip", "imgs").status_code == 303
    page = editor.get("/datasets/imgs/versions/1")
    assert page.text.count('<img loading="lazy"') == 24
    image = editor.get("/datasets/imgs/versions/1/items/0")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert editor.get("/datasets/imgs/versions/1/items/99").status_code == 404


def test_an_upload_over_the_body_limit_gets_a_page_and_stores_nothing(tmp_path):
    from console_support import sign_in
    from fastapi.testclient import TestClient

    from modelyard.core.settings import Settings
    from modelyard.data.datasets import DatasetStore
    from modelyard.server.app import create_app
    from modelyard.store.tokens import TokenStore
    from modelyard.store.workspace import Workspace

    workspace = Workspace.open(Settings.load(tmp_path / "home", max_body_bytes=4096))
    try:
        _, secret = TokenStore(workspace.engine).create("e", "editor")
        with TestClient(create_app(workspace)) as client:
            sign_in(client, secret)
            answer = _import(client, CSV * 10, "t.csv", "big")
            assert answer.status_code == 413 and "Upload too large" in answer.text
            assert "Nothing was stored" in answer.text
            api = client.post("/api/v1/blobs", content=b"x" * 5000, headers={"Authorization": f"Bearer {secret}"})
            assert api.status_code == 413 and api.json()["error"]["code"] == "payload_too_large"
        assert DatasetStore(workspace).list() == []
    finally:
        workspace.close()


def test_a_coco_archive_imports_and_the_version_page_shows_detection_statistics(as_role, sqlite_workspace, tmp_path):
    from PIL import Image

    from modelyard.data import formats
    from modelyard.data.annotations import Annotated, AnnotationSet, Box

    def png(item):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), (90, 90, 90)).save(buffer, "PNG")
        return buffer.getvalue()

    boxes = AnnotationSet("detection", ("<b>car</b>", "person"), tuple(
        Annotated.make(f"{i}.png", 40, 30, [Box(2, 2, 20, 20, "<b>car</b>"), Box(1, 1, 4, 4, "person")])
        for i in range(6)))
    formats.write(boxes, tmp_path / "coco", "coco", png)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for path in (tmp_path / "coco").rglob("*"):
            if path.is_file():
                zf.write(path, f"export/{path.relative_to(tmp_path / 'coco').as_posix()}")
    editor = as_role("editor")
    answer = _import(editor, archive.getvalue(), "boxes.zip", "boxes", kind="object-detection")
    assert answer.status_code == 303, answer.text
    page = editor.get("/datasets/boxes/versions/1")
    assert page.status_code == 200 and 'id="detection-stats"' in page.text
    assert "12 on 6 images" in page.text and "&lt;b&gt;car&lt;/b&gt;" in page.text and "<b>car</b>" not in page.text
    assert "tiny boxes</th><td>6" in page.text and page.text.count('<img loading="lazy"') == 6
    assert editor.get("/datasets/boxes/versions/1/items/0").headers["content-type"] == "image/png"


def test_a_text_csv_imports_and_the_version_page_lists_the_texts(as_role, sqlite_workspace):
    rows = "text,label\n" + "".join(f"\"<script>alert({i})</script> text {i}\",{'ab'[i % 2]}\n" for i in range(12))
    editor = as_role("editor")
    answer = _import(editor, rows.encode(), "texts.csv", "texts", kind="text-classification")
    assert answer.status_code == 303, answer.text
    page = editor.get("/datasets/texts/versions/1")
    assert page.status_code == 200 and 'id="text-stats"' in page.text and "ready for training" in page.text
    assert page.text.count("&lt;script&gt;alert(") == 12 and "<script>alert(" not in page.text


def test_a_multilabel_version_page_shows_each_images_labels(as_role, sqlite_workspace, tmp_path):
    from PIL import Image

    from modelyard.data import formats
    from modelyard.data.annotations import Annotated, AnnotationSet
    from modelyard.data.datasets import DatasetStore

    def png(item):
        buffer = io.BytesIO()
        Image.new("RGB", (12, 10), (9, 9, 9)).save(buffer, "PNG")
        return buffer.getvalue()

    labeled = AnnotationSet("multilabel", ("sky", "sea"), tuple(
        Annotated.make(f"{i}.png", 12, 10, labels=["sky", "sea"][: i % 3]) for i in range(12)))
    formats.write(labeled, tmp_path / "csv", "csv", png)
    DatasetStore(sqlite_workspace).import_path(tmp_path / "csv", "beach", kind="multilabel-classification")
    page = as_role("viewer").get("/datasets/beach/versions/1")
    assert page.status_code == 200 and page.text.count('<img loading="lazy"') == 12
    assert "<b>sky, sea</b>" in page.text and "<b>(no label)</b>" in page.text


def test_a_detection_version_with_box_counts_only_still_renders_and_is_checked(as_role, sqlite_workspace):
    """Versions other code makes (a labeling job's publish) may carry fewer statistics than an import."""
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(sqlite_workspace)
    entries = [{"path": f"{i}.png", "digest": "0" * 64, "size": 1, "split": "t", "width": 8, "height": 8,
                "boxes": [[1, 1, 5, 5, "cat"]]} for i in range(6)]
    version = store._create_version(
        "published", "object-detection", {"schema": "modelyard.dataset-manifest/1", "kind": "object-detection",
                                          "entries": entries},
        schema={"task": "object-detection", "classes": ["cat", "dog"]}, split={"counts": {"train": 6}},
        stats={"kind": "object-detection", "images": 6, "usable": 6, "boxes": 6, "per_class": {"cat": 6, "dog": 0}},
        lineage={"parent": None, "step": None}, source={"name": "a job"}, items=6, size=6, description="",
        created_by="t")
    check = store.check(version)
    assert check.problems == ("every class needs labeled images; no box of dog (label some, or remove the class)",)
    page = as_role("viewer").get("/datasets/published/versions/1")
    assert page.status_code == 200 and 'id="detection-stats"' in page.text and "not computed" in page.text
