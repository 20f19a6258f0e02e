"""Annotated image datasets: COCO/VOC/YOLO/Label Studio folders imported as immutable versions, their statistics
and trainability, read back as annotations, exported in every format, and bad input that imports nothing."""

import json

import pytest

from formatsupport import assert_same, detection_set, png, png_source
from modelyard.core.errors import InvalidInput
from modelyard.data import formats
from modelyard.data.annotated import annotations_of
from modelyard.data.annotations import Annotated, AnnotationSet, Box
from modelyard.data.datasets import DatasetStore
from modelyard.data.export import export_version
from modelyard.data.steps import apply_step


@pytest.fixture
def store(sqlite_workspace):
    return DatasetStore(sqlite_workspace)


def _shapes(count: int = 12) -> AnnotationSet:
    """Two classes on ``count`` 64x48 images, one tiny box, and (in the file, not the set) room to add more."""
    items = []
    for i in range(count):
        boxes = [Box(4, 4, 30, 30, "cat"), Box(30 + i, 10, 60, 40, "dog")]
        if i == 0:
            boxes.append(Box(1, 1, 5, 4, "dog"))  # 4x3 px: tiny
        items.append(Annotated.make(f"img{i:02d}.png", 64, 48, boxes))
    return AnnotationSet("detection", ("cat", "dog"), tuple(items))


def _coco_folder(tmp_path, annotations, edit=None):
    folder = tmp_path / "coco"
    formats.write(annotations, folder, "coco", png_source(annotations))
    if edit:
        path = folder / "annotations.json"
        document = json.loads(path.read_text())
        edit(document)
        path.write_text(json.dumps(document))
    return folder


def test_a_coco_folder_imports_as_an_object_detection_version_with_statistics(store, tmp_path):
    original = _shapes()

    def crossing(document):  # the first box of img01 runs 6 px past the right edge: clipped, counted
        document["annotations"][3]["bbox"] = [40, 10, 30, 20]

    version = store.import_path(_coco_folder(tmp_path, original, crossing), "shapes")
    assert (version.kind, version.items, version.schema["classes"]) == ("object-detection", 12, ["cat", "dog"])
    assert version.source["format"] == "coco" and "clipped 1 box" in version.source["notes"][0]
    stats = version.stats
    assert stats["boxes"] == 25 and stats["per_class"] == {"cat": 12, "dog": 13}
    assert stats["images_per_class"] == {"cat": 12, "dog": 12}
    assert stats["tiny"]["boxes"] == 1 and stats["tiny"]["examples"][0]["path"] == "img00.png"
    assert stats["clipped"] == {"boxes": 1, "images": 1, "examples": [{"path": "img01.png", "boxes": 1}]}
    assert stats["boxes_per_image"]["max"] == 3 and sum(stats["split"].values()) == 12
    entry = store.manifest(version)["entries"][1]
    assert entry["boxes"][0] == [40, 10, 64, 30, "cat"]
    assert {"path", "digest", "size", "split", "width", "height", "boxes"} <= set(entry)
    check = store.check(version)
    assert check and any("clipped" in w for w in check.warnings)
    back = store.load_annotations(version)
    assert back.by_item()["img05.png"] == original.by_item()["img05.png"]
    assert store.item_reader(version)("img03.png") == png(64, 48)


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo", "labelstudio"])
def test_a_version_exports_in_every_detection_format_and_reads_back_the_same(store, tmp_path, fmt):
    original = _shapes(6)
    version = store.import_path(_coco_folder(tmp_path, original), "shapes")
    result = export_version(version.to_dict(), store.manifest(version), store.blobs.read_bytes, tmp_path / "out",
                            fmt)
    assert result["format"] == fmt and result["boxes"] == 13 and result["images"] == 6
    assert (tmp_path / "out" / "splits.csv").read_text().startswith("path,split\nimg00.png,")
    back, files = formats.read(tmp_path / "out", fmt)
    assert_same(back, original)
    again = store.import_path(tmp_path / "out", "again")  # detected, beside splits.csv and dataset.json
    assert again.source["format"] == fmt
    assert store.manifest(again)["entries"][0]["digest"] == store.manifest(version)["entries"][0]["digest"]


def test_yolo_and_label_studio_classification_folders_import(store, tmp_path):
    folder = tmp_path / "yolo"
    formats.write(_shapes(5), folder, "yolo", png_source(_shapes(5)))
    (folder / "labels" / "img03.txt").write_text("")  # an empty label file: an image without objects
    version = store.import_path(folder, "y")
    assert version.source["format"] == "yolo" and version.stats["empty_images"] == 1
    labeled = AnnotationSet("classification", ("a", "b"), tuple(
        Annotated.make(f"{i}.png", 8, 8, labels=["ab"[i % 2]]) for i in range(10)))
    formats.write(labeled, tmp_path / "ls", "labelstudio", png_source(labeled))
    classified = store.import_path(tmp_path / "ls", "c")
    assert classified.kind == "image-classification" and classified.stats["per_class"] == {"a": 5, "b": 5}
    assert store.manifest(classified)["entries"][0]["label"] == "a"
    assert annotations_of(classified.kind, classified.schema, store.manifest(classified)) == labeled


def test_a_corrupt_image_or_bad_annotation_imports_nothing(store, tmp_path):
    folder = _coco_folder(tmp_path, _shapes(4))
    (folder / "images" / "img02.png").write_bytes(png(64, 48)[:60])  # truncated: the header still reads
    with pytest.raises(InvalidInput, match="img02.png: cannot decode"):
        store.import_path(folder, "shapes")
    (folder / "images" / "img02.png").write_bytes(png(64, 48))
    with pytest.raises(InvalidInput, match="no VOC XML files"):
        store.import_path(folder, "shapes", kind="object-detection", fmt="voc")
    with pytest.raises(InvalidInput, match="imports as object-detection, not image-classification"):
        store.import_path(folder, "shapes", kind="image-classification", fmt="coco")
    (folder / "images" / "img03.png").unlink()
    with pytest.raises(InvalidInput, match="img03.png: annotations.json names this image but no such file"):
        store.import_path(folder, "shapes")
    assert store.list() == []


def test_the_check_needs_every_class_labeled_and_enough_images_per_class(store, tmp_path):
    few = AnnotationSet("detection", ("cat", "dog", "bird"), tuple(
        Annotated.make(f"{i}.png", 32, 32, [Box(1, 1, 20, 20, "cat" if i < 6 else "dog")]) for i in range(8)))
    version = store.import_path(_coco_folder(tmp_path, few), "few")
    check = store.check(version)
    assert not check
    assert any("every class needs labeled images; no box of bird" in p for p in check.problems)
    assert any("at least 5 images per class; too few in dog (2)" in p for p in check.problems)
    with pytest.raises(InvalidInput, match="no preprocessing steps apply to object-detection"):
        apply_step(store, version, {"op": "dedupe"})


def test_an_explicit_format_imports_a_larger_set(store, tmp_path):
    big = detection_set(40)
    version = store.import_path(_coco_folder(tmp_path, big), "big", fmt="coco")
    assert version.items == 40 and version.stats["boxes"] == 120


def test_a_text_csv_imports_as_text_classification_keeping_unlabeled_texts(store, tmp_path):
    rows = ["id,text,label"] + [f'r{i},"review {i}, {"great" if i % 2 else "awful"}",{"pos" if i % 2 else "neg"}'
                                for i in range(12)] + ['r12,"not labeled yet",', 'r13,"review 1, great",pos']
    (tmp_path / "texts.csv").write_text("\n".join(rows) + "\n")
    version = store.import_path(tmp_path / "texts.csv", "reviews", kind="text-classification")
    assert (version.kind, version.items, version.schema["classes"]) == ("text-classification", 14, ["neg", "pos"])
    stats = version.stats
    assert (stats["labeled"], stats["unlabeled"], stats["per_class"]) == (13, 1, {"neg": 6, "pos": 7})
    assert stats["duplicates"]["texts"] == 1 and stats["length"]["max"] == len("review 10, awful")
    check = store.check(version)
    assert check and any("1 of 14 texts have no label" in w for w in check.warnings)
    entry = store.manifest(version)["entries"][12]
    assert entry == {"path": "r12", "text": "not labeled yet", "labels": [], "split": entry["split"]}
    annotations = store.load_annotations(version)
    assert annotations.task == "text" and annotations.by_item()["r3"].text == "review 3, great"
    for fmt in ("csv", "labelstudio"):
        export_version(version.to_dict(), store.manifest(version), store.blobs.read_bytes, tmp_path / fmt, fmt)
        back, files = formats.read(tmp_path / fmt, fmt)
        assert back == annotations and files == {}
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("text,label\nonly one,a\n")
    assert not store.check(store.import_path(tiny, "tiny", kind="text-classification"))



def test_a_multilabel_csv_imports_as_multilabel_classification(store, tmp_path):
    labeled = AnnotationSet("multilabel", ("sky", "sea", "sand"), tuple(
        Annotated.make(f"beach/{i}.png", 12, 10, labels=[("sky", "sea", "sand")[j] for j in range(3) if (i >> j) & 1])
        for i in range(24)))
    formats.write(labeled, tmp_path / "csv", "csv", png_source(labeled))
    version = store.import_path(tmp_path / "csv", "beach", kind="multilabel-classification")
    assert version.kind == "multilabel-classification" and version.schema["multilabel"] is True
    stats = version.stats
    assert (stats["unlabeled"], stats["per_class"]) == (3, {"sky": 12, "sea": 12, "sand": 12})
    assert stats["labels_per_image"]["max"] == 3
    assert store.check(version) and store.load_annotations(version).by_item() == labeled.by_item()
    result = export_version(version.to_dict(), store.manifest(version), store.blobs.read_bytes, tmp_path / "ls",
                            "labelstudio")
    assert result["images"] == 24 and formats.read(tmp_path / "ls")[0].by_item() == labeled.by_item()


def test_an_archive_of_an_annotation_folder_is_detected(store, tmp_path):
    import zipfile

    folder = _coco_folder(tmp_path, _shapes(5))
    with zipfile.ZipFile(tmp_path / "shapes.zip", "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, f"export/{path.relative_to(folder).as_posix()}")
    version = store.import_path(tmp_path / "shapes.zip", "zipped")
    assert (version.kind, version.source["format"], version.stats["boxes"]) == ("object-detection", "coco", 11)
