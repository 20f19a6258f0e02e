"""Export -> import is the identity for every format (boxes within half a pixel), and the COCO export is what the
real pycocotools reads and scores."""

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from formatsupport import annotation_sets, assert_same, detection_set, png_source
from modelyard.data import formats

EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
CASES = [("coco", "detection"), ("voc", "detection"), ("yolo", "detection"), ("labelstudio", "detection"),
         ("labelstudio", "classification"), ("labelstudio", "multilabel"), ("labelstudio", "text"),
         ("csv", "classification"), ("csv", "multilabel"), ("csv", "text")]


@pytest.mark.parametrize(("fmt", "task"), CASES)
def test_export_then_import_is_the_identity(fmt, task):
    @EXAMPLES
    @given(annotation_sets(task))
    def roundtrip(original):
        with tempfile.TemporaryDirectory() as scratch:
            dest = Path(scratch) / "out"
            summary = formats.write(original, dest, fmt, png_source(original))
            assert summary["items"] == len(original.items)
            assert formats.detect(dest) == fmt
            back, files = formats.read(dest)
            assert_same(back, original)
            assert all(files[a.item].is_file() for a in original.items if task != "text")

    roundtrip()


def test_the_coco_export_loads_in_pycocotools_and_scores_its_own_boxes_perfectly(tmp_path):
    import contextlib
    import io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    original = detection_set(6)
    formats.write(original, tmp_path / "coco", "coco", png_source(original))
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(tmp_path / "coco" / "annotations.json"))
        assert [c["name"] for c in truth.loadCats(truth.getCatIds())] == ["cat", "dog"]
        first = truth.loadImgs(truth.getImgIds()[0])[0]
        assert (first["file_name"], first["width"], first["height"]) == ("img000000.png", 64, 48)
        boxes = [a["bbox"] for a in truth.loadAnns(truth.getAnnIds(imgIds=[first["id"]]))]
        assert boxes == [[1, 2, 19, 28], [2, 3, 19, 28], [3, 4, 19, 28]]
        detections = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
                      for a in truth.loadAnns(truth.getAnnIds())]
        evaluation = COCOeval(truth, truth.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert np.isclose(evaluation.stats[0], 1.0) and np.isclose(evaluation.stats[1], 1.0)
