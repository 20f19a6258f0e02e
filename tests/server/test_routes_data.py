"""The datasets API over the in-process SDK and a real server: import, versions, stats, steps, export, errors."""

import pytest

from modelyard.client import Client
from modelyard.core.errors import Forbidden, InvalidInput, NotFound


@pytest.fixture(scope="module")
def iris_file(tmp_path_factory):
    from modelyard.data.samples import write_tabular_sample

    return write_tabular_sample("iris", tmp_path_factory.mktemp("routes-data") / "iris.csv")


def test_import_show_stats_prep_export(client, iris_file, tmp_path):
    version = client.data.import_path(iris_file, "iris", description="Fisher's iris")
    assert version["schema"] == "modelyard.dataset-version/1" and version["ref"] == "iris@1"
    assert version["display_version"] == "V001" and version["description"] == "Fisher's iris"
    assert client.data.list()["items"][0]["latest"] == "iris@1"
    assert client.data.get("iris")["id"] == version["id"]  # no version: the latest
    stats = client.data.stats("iris@1")
    assert stats["schema"] == "modelyard.dataset-stats/1" and stats["check"]["trainable"] is True
    made = client.data.prep("iris@1", [{"op": "drop-columns", "columns": ["petal width (cm)"]}])
    assert made["versions"][0]["ref"] == "iris@2"
    assert [v["version"] for v in client.data.versions("iris")["versions"]] == [1, 2]
    out = client.data.export("iris@2", tmp_path / "out")
    assert (tmp_path / "out" / "data.csv").is_file() and out["ref"] == "iris@2"


def test_api_errors(client, tmp_path, iris_file):
    with pytest.raises(NotFound, match="dataset 'nope' not found"):
        client.data.get("nope@1")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInput, match="empty.csv: the file is empty"):
        client.data.import_path(empty, "e")
    with pytest.raises(InvalidInput, match="body field 'kind'"):
        client.request("POST", "/api/v1/datasets/import",
                       json={"name": "x", "source": "sha256:" + "0" * 64, "filename": "a.csv", "kind": "video"})
    with pytest.raises(NotFound, match="not found"):
        client.request("POST", "/api/v1/datasets/import",
                       json={"name": "x", "source": "sha256:" + "0" * 64, "filename": "a.csv"})
    with pytest.raises(InvalidInput, match="dataset name"):
        client.data.import_path(iris_file, "bad name!")
    assert client.data.list()["items"] == []
    token = client.tokens.create("viewer", "viewer")["token"]
    with Client(home=tmp_path / "home", token=token) as viewer, pytest.raises(Forbidden):
        viewer.request("POST", "/api/v1/datasets/import",
                       json={"name": "x", "source": "sha256:" + "0" * 64, "filename": "a.csv"})


@pytest.mark.slow
def test_over_http_with_an_image_folder(live_server, tmp_path):
    import numpy as np

    from modelyard.data.samples import write_image_folder

    rng = np.random.default_rng(0)
    folder = write_image_folder(rng.integers(0, 255, (12, 10, 10), dtype=np.uint8), np.arange(12) % 2,
                                tmp_path / "imgs", classes=["a", "b"])
    with Client(url=live_server.url, token=live_server.token) as remote:
        version = remote.data.import_path(folder, "tiny")
        assert version["items"] == 12 and version["data_schema"]["classes"] == ["a", "b"]
        remote.data.export("tiny@1", tmp_path / "back")
    assert len(list((tmp_path / "back").rglob("*.png"))) == 12


def test_long_file_names_are_imported_or_refused_with_422(client, iris_file):
    digest = client.blobs.put(iris_file)["digest"]
    long_name = "i" * 246 + ".csv"  # fits a file system name (250 bytes), not with a temp-file prefix added
    version = client.request("POST", "/api/v1/datasets/import",
                             json={"name": "long", "source": digest, "filename": long_name}).json()
    assert version["source"]["name"] == long_name and version["items"] == 150
    too_long = "é" * 200 + ".csv"  # 204 characters, 404 bytes: no file system can hold the name
    response = client._http.post("/api/v1/datasets/import",
                                 json={"name": "long", "source": digest, "filename": too_long})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_input"
    assert "longer than 255 bytes" in response.json()["error"]["message"]


def _annotated_folder(tmp_path, fmt="yolo", count=6):
    import io

    from PIL import Image

    from modelyard.data import formats
    from modelyard.data.annotations import Annotated, AnnotationSet, Box

    def png(item):
        buffer = io.BytesIO()
        Image.new("RGB", (32, 24), (200, 10, 10)).save(buffer, "PNG")
        return buffer.getvalue()

    boxes = AnnotationSet("detection", ("car", "bus"), tuple(
        Annotated.make(f"cam{i % 2}/{i}.png", 32, 24, [Box(1, 2, 16, 20, ("car", "bus")[i % 2])])
        for i in range(count)))
    formats.write(boxes, tmp_path / fmt, fmt, png)
    return tmp_path / fmt, boxes


def test_annotated_folders_import_and_export_through_the_sdk(client, tmp_path):
    from modelyard.data import formats

    folder, original = _annotated_folder(tmp_path)
    version = client.data.import_path(folder, "cams")
    assert version["kind"] == "object-detection" and version["source"]["format"] == "yolo"
    assert version["stats"]["boxes"] == 6 and version["data_schema"]["classes"] == ["car", "bus"]
    assert client.data.stats("cams@1")["check"]["trainable"] is False  # 3 images per class: fewer than 5
    out = client.data.export("cams@1", tmp_path / "voc", fmt="voc")
    assert out["format"] == "voc" and (tmp_path / "voc" / "Annotations" / "cam1" / "1.xml").is_file()
    back, _ = formats.read(tmp_path / "voc")
    assert back.by_item() == original.by_item() and back.classes == original.classes
    client.data.export("cams@1", tmp_path / "coco-default")
    assert (tmp_path / "coco-default" / "annotations.json").is_file()


def test_annotation_import_errors_are_422_and_store_nothing(client, tmp_path, iris_file):
    folder, _ = _annotated_folder(tmp_path)
    (folder / "labels" / "cam0" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InvalidInput, match="labels/cam0/ghost.txt: a YOLO label file without its image"):
        client.data.import_path(folder, "cams")
    with pytest.raises(InvalidInput, match="a table is imported with --kind tabular"):
        client.data.import_path(iris_file, "t", kind="tabular", fmt="csv")
    with pytest.raises(InvalidInput, match="format"):
        client.request("POST", "/api/v1/datasets/import-files", json={
            "name": "x", "files": {"a.png": "sha256:" + "0" * 64}, "format": "pascal"})
    assert client.data.list()["items"] == []
