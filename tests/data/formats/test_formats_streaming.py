"""Large exports stream: writing a 20,000-item set holds about one item at a time, never the whole document."""

import json
import tracemalloc

import pytest

from formatsupport import detection_set
from modelyard.data import formats


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "document", "count"), [("coco", "annotations.json", 20_000),
                                                         ("labelstudio", "tasks.json", 4_000)])
def test_a_large_export_keeps_memory_far_below_the_document_size(tmp_path, fmt, document, count):
    big = detection_set(count, boxes_per_item=1)  # one box each: tracemalloc slows every allocation
    formats.write(detection_set(2), tmp_path / "warm-up", fmt)  # imports and first-use caches are not the export
    tracemalloc.start()
    try:
        formats.write(big, tmp_path / fmt, fmt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / fmt / document).stat().st_size
    assert size > 150 * count
    assert peak < size / 20, f"peak {peak} bytes while writing a {size}-byte document"
    with open(tmp_path / fmt / document) as handle:  # the streamed pieces make one valid document
        loaded = json.load(handle)
    if fmt == "coco":
        assert len(loaded["images"]) == count and len(loaded["annotations"]) == count
    else:
        assert sum(len(task["annotations"][0]["result"]) for task in loaded) == count
