"""Annotation sets and tiny images for the format and annotated-dataset tests (hypothesis strategies, builders)."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from hypothesis import strategies as st

from modelyard.data.annotations import Annotated, AnnotationSet, Box

CLASS_NAMES = ("cat", "dog", "traffic light", "b\u00e9b\u00e9", "7", "Person", "R&D <x>", "#1: a")


@lru_cache(maxsize=256)
def png(width: int, height: int, shade: int = 0) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), shade, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_source(annotations: AnnotationSet):
    """An image source giving each item a blank PNG of its recorded size."""
    sizes = {a.item: (a.width, a.height) for a in annotations.items}
    return lambda item: png(*sizes[item])


@st.composite
def boxes(draw, width: int, height: int, classes: tuple[str, ...], scored: bool):
    x1 = draw(st.floats(0, width - 1, allow_nan=False))
    y1 = draw(st.floats(0, height - 1, allow_nan=False))
    x2 = draw(st.floats(min(x1 + 1, width), width, allow_nan=False))
    y2 = draw(st.floats(min(y1 + 1, height), height, allow_nan=False))
    score = draw(st.floats(0, 1, allow_nan=False)) if scored and draw(st.booleans()) else None
    return Box(x1, y1, x2, y2, draw(st.sampled_from(classes)), score)


@st.composite
def annotation_sets(draw, task: str = "detection", scored: bool = True, max_items: int = 5):
    classes = tuple(draw(st.lists(st.sampled_from(CLASS_NAMES), min_size=1, max_size=4, unique=True)))
    count = draw(st.integers(0 if task != "text" else 1, max_items))
    items = []
    for index in range(count):
        folder = draw(st.sampled_from(["", "a/", "a b/c/"]))
        # names that URLs, XML, CSV and JSON each treat specially
        stem = draw(st.sampled_from(["img", "caf\u00e9 ", "50%#", "a,b&<c>", "q?d=x"]))
        item = f"{folder}{stem}{index}.png"
        if task == "text":
            text = draw(st.text(min_size=1, max_size=30).filter(lambda t: t.strip()))
            labels = draw(st.lists(st.sampled_from(classes), max_size=3, unique=True))
            items.append(Annotated.make(f"t{index}", labels=labels, text=text))
            continue
        width, height = draw(st.integers(4, 48)), draw(st.integers(4, 48))
        if task == "detection":
            found = draw(st.lists(boxes(width, height, classes, scored), max_size=4))
            items.append(Annotated.make(item, width, height, found))
        else:
            most = 1 if task == "classification" else 3
            labels = draw(st.lists(st.sampled_from(classes), min_size=0, max_size=most, unique=True))
            items.append(Annotated.make(item, width, height, labels=labels))
    return AnnotationSet(task, classes, tuple(items))


def assert_same(back: AnnotationSet, original: AnnotationSet, tolerance: float = 0.5) -> None:
    """Same task, classes and items; boxes within ``tolerance`` pixels, scores within 1e-9."""
    assert back.task == original.task
    assert back.classes == original.classes
    got = back.by_item()
    assert sorted(got) == sorted(a.item for a in original.items)
    for want in original.items:
        have = got[want.item]
        assert (have.width, have.height, have.labels, have.text) == (want.width, want.height, want.labels, want.text)
        assert len(have.boxes) == len(want.boxes)
        # formats keep box order, except that Label Studio puts human boxes before a model's proposals
        for a, b in zip(_truth_first(have.boxes), _truth_first(want.boxes), strict=True):
            assert a.label == b.label
            assert max(abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)) <= tolerance
            assert (a.score is None) == (b.score is None)
            if a.score is not None:
                assert abs(a.score - b.score) < 1e-9


def _truth_first(found):
    return [b for b in found if b.score is None] + [b for b in found if b.score is not None]


def detection_set(count: int, boxes_per_item: int = 3, size: tuple[int, int] = (64, 48)) -> AnnotationSet:
    """A plain detection set of ``count`` items (for the streaming and dataset tests)."""
    width, height = size
    items = tuple(Annotated.make(f"img{i:06d}.png", width, height,
                                 [Box(1 + j, 2 + j, 20 + j, 30 + j, ("cat", "dog")[(i + j) % 2])
                                  for j in range(boxes_per_item)]) for i in range(count))
    return AnnotationSet("detection", ("cat", "dog"), items)
