"""Bad annotation input: one clear InvalidInput naming the item, and nothing returned or written half-way."""

import json

import pytest

from formatsupport import detection_set, png, png_source
from modelyard.core.errors import InvalidInput
from modelyard.data import formats


def _export(tmp_path, fmt, count=3):
    original = detection_set(count)
    formats.write(original, tmp_path / fmt, fmt, png_source(original))
    return tmp_path / fmt


def _coco(folder):
    path = folder / "annotations.json"
    return path, json.loads(path.read_text())


def test_a_corrupt_image_is_refused_naming_it(tmp_path):
    folder = _export(tmp_path, "coco")
    (folder / "images" / "img000001.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(InvalidInput, match="img000001.png: the image img000001.png cannot be read"):
        formats.read(folder)


def test_coco_naming_an_image_that_does_not_exist_is_refused(tmp_path):
    folder = _export(tmp_path, "coco")
    (folder / "images" / "img000002.png").unlink()
    with pytest.raises(InvalidInput, match="img000002.png: annotations.json names this image but no such file"):
        formats.read(folder, "coco")


def test_a_box_crossing_the_edge_is_clipped_and_one_outside_is_refused(tmp_path):
    folder = _export(tmp_path, "coco")
    path, document = _coco(folder)
    document["annotations"][0]["bbox"] = [50, 40, 30, 30]  # 64x48 image: crosses the right and bottom edges
    path.write_text(json.dumps(document))
    annotations, _ = formats.read(folder)
    assert annotations.clipped == 1
    assert annotations.items[0].boxes[0].xywh() == (50, 40, 14, 8)
    document["annotations"][0]["bbox"] = [70, 10, 5, 5]
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput, match="img000000.png: box .* lies outside the 64x48 image"):
        formats.read(folder)


def test_unknown_classes_are_refused_naming_the_item(tmp_path):
    folder = _export(tmp_path, "coco")
    path, document = _coco(folder)
    document["annotations"][4]["category_id"] = 9
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput, match="img000001.png: unknown class: category id 9"):
        formats.read(folder)
    yolo = _export(tmp_path, "yolo")
    (yolo / "labels" / "img000002.txt").write_text("5 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InvalidInput, match="img000002.png: unknown class index 5"):
        formats.read(yolo)
    voc = _export(tmp_path, "voc")
    (voc / "labels.txt").write_text("cat\n")
    with pytest.raises(InvalidInput, match="unknown class 'dog'"):
        formats.read(voc)


def test_duplicate_item_ids_are_refused(tmp_path):
    folder = _export(tmp_path, "coco")
    path, document = _coco(folder)
    document["images"][1]["file_name"] = "img000000.png"
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput, match="item 'img000000.png' appears twice"):
        formats.read(folder)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.png").write_bytes(png(8, 8))
    (tmp_path / "c" / "labels.csv").write_text("file,label\na.png,x\na.png,y\n")
    with pytest.raises(InvalidInput, match="appears twice"):
        formats.read(tmp_path / "c")


def test_a_yolo_label_without_its_image_is_refused_and_an_empty_label_is_an_image_without_objects(tmp_path):
    folder = _export(tmp_path, "yolo")
    (folder / "labels" / "img000001.txt").write_text("")
    (folder / "labels" / "img000002.txt").unlink()  # no label file: background too, as in Ultralytics
    annotations, _ = formats.read(folder)
    assert [len(a.boxes) for a in annotations.items] == [3, 0, 0]
    (folder / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(InvalidInput, match="labels/ghost.txt: a YOLO label file without its image"):
        formats.read(folder)


@pytest.mark.parametrize(("fmt", "file", "content", "message"), [
    ("coco", "annotations.json", '{"images": [', "annotations.json: not valid JSON .line 1"),
    ("voc", "Annotations/img000001.xml", "<annotation><filename>", "img000001.xml: not well-formed XML"),
    ("labelstudio", "tasks.json", "[{]", "tasks.json: not valid JSON"),
    ("yolo", "labels/img000000.txt", "0 0.5 0.5\n", "img000000.png: img000000.txt line 1 has 3 numbers"),
    ("yolo", "data.yaml", "names: [a, b\n", "data.yaml: not valid YAML"),
])
def test_malformed_files_are_refused_naming_the_file(tmp_path, fmt, file, content, message):
    folder = _export(tmp_path, fmt)
    (folder / file).write_text(content)
    with pytest.raises(InvalidInput, match=message):
        formats.read(folder, fmt)


def test_a_size_that_disagrees_with_the_image_is_refused(tmp_path):
    folder = _export(tmp_path, "coco")
    path, document = _coco(folder)
    document["images"][0]["width"] = 640
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput, match="img000000.png: annotations.json says the image is 640x48 but the file "
                                           "is 64x48"):
        formats.read(folder)


def test_label_studio_refuses_rotated_boxes_and_polygons_naming_the_item(tmp_path):
    folder = _export(tmp_path, "labelstudio")
    tasks = json.loads((folder / "tasks.json").read_text())
    tasks[1]["annotations"][0]["result"][0]["value"]["rotation"] = 30
    (folder / "tasks.json").write_text(json.dumps(tasks))
    with pytest.raises(InvalidInput, match="img000001.png: a rectangle is rotated by 30"):
        formats.read(folder)
    tasks[1]["annotations"][0]["result"][0]["value"]["rotation"] = 0
    tasks[2]["annotations"][0]["result"][0]["type"] = "polygonlabels"
    (folder / "tasks.json").write_text(json.dumps(tasks))
    with pytest.raises(InvalidInput, match="img000002.png: result type 'polygonlabels' cannot be imported"):
        formats.read(folder)


def test_label_studio_reads_url_forms_and_the_last_annotation_that_was_not_cancelled(tmp_path):
    (tmp_path / "images" / "x").mkdir(parents=True)
    (tmp_path / "images" / "x" / "a.png").write_bytes(png(100, 50))
    (tmp_path / "b.png").write_bytes(png(10, 10))
    box = {"type": "rectanglelabels", "value": {"x": 10, "y": 20, "width": 50, "height": 40,
                                                "rectanglelabels": ["car"]}}
    tasks = [{"data": {"image": "/data/local-files/?d=x/a.png"},
              "annotations": [{"result": [box]}, {"result": [], "was_cancelled": True}],
              "predictions": [{"score": 0.25, "result": [box]}]},
             {"data": {"image": "http://example.invalid/up/b.png"}, "annotations": []}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    annotations, files = formats.read(tmp_path)
    first = annotations.by_item()["x/a.png"]
    assert [(b.x1, b.y1, b.x2, b.y2, b.score) for b in first.boxes] == [(10, 10, 60, 30, None), (10, 10, 60, 30, 0.25)]
    assert files["b.png"] == tmp_path / "b.png"


def test_a_failed_export_leaves_nothing_and_a_used_folder_is_refused(tmp_path):
    original = detection_set(5)

    def source(item):
        if item == "img000003.png":
            raise InvalidInput(f"{item}: blob is missing")
        return png(64, 48)

    with pytest.raises(InvalidInput, match="img000003.png: blob is missing"):
        formats.write(original, tmp_path / "out", "yolo", source)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="exists and is not an empty folder"):
        formats.write(original, tmp_path / "used", "coco")
    with pytest.raises(InvalidInput, match="yolo cannot hold a classification set"):
        formats.write(type(original)("classification", ("a",), ()), tmp_path / "x", "yolo")


def test_format_detection_says_what_it_looked_for(tmp_path):
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(InvalidInput, match="cannot tell the annotation format"):
        formats.read(tmp_path)


def test_a_coco_release_layout_reads_train_and_val_instances_only(tmp_path):
    original = detection_set(4)
    formats.write(original, tmp_path / "x", "coco", png_source(original))
    document = json.loads((tmp_path / "x" / "annotations.json").read_text())
    (tmp_path / "coco" / "annotations").mkdir(parents=True)
    for split, ids in (("train2017", (1, 2, 3)), ("val2017", (4,))):
        part = {**document, "images": [i for i in document["images"] if i["id"] in ids],
                "annotations": [a for a in document["annotations"] if a["image_id"] in ids]}
        (tmp_path / "coco" / "annotations" / f"instances_{split}.json").write_text(json.dumps(part))
        (tmp_path / "coco" / "annotations" / f"captions_{split}.json").write_text(json.dumps(
            {"images": part["images"], "annotations": [{"image_id": 1, "caption": "a cat"}]}))
        (tmp_path / "coco" / split).mkdir()
        for image in part["images"]:
            (tmp_path / "coco" / split / image["file_name"]).write_bytes(png(64, 48))
    annotations, files = formats.read(tmp_path / "coco")
    assert annotations.by_item() == original.by_item()
    assert files["img000003.png"] == tmp_path / "coco" / "val2017" / "img000003.png"


@pytest.mark.parametrize("categories", [[{"id": "1", "name": "cat"}, {"id": 2, "name": "dog"}],
                                        [{"id": 1}], ["cat"]])
def test_coco_categories_need_integer_ids_and_names(tmp_path, categories):
    folder = _export(tmp_path, "coco")
    path, document = _coco(folder)
    document["categories"] = categories
    path.write_text(json.dumps(document))
    with pytest.raises(InvalidInput, match="annotations.json: a category needs an integer id and a name"):
        formats.read(folder)
