"""Annotations in one shape for every labeling task and file format: boxes, class labels and text labels per item.

Every importer (COCO, Pascal VOC, YOLO, Label Studio, CSV), every exporter, the labeling jobs, the detection
dataset kind and the detectors' training and evaluation speak these frozen values, so a format only converts to and
from them once.

Coordinates are absolute pixels, ``x1, y1, x2, y2`` with the origin at the image's top-left corner (COCO's
``[x, y, w, h]``, YOLO's normalised centres and Label Studio's percentages are converted at the format's edge).

Boxes outside the image: a box that crosses an edge is **clipped** to the image and counted (annotators routinely
drag past the border, and CVAT/VOC exports contain such boxes; refusing them would make real exports unusable). A box
that lies entirely outside the image, has no area after clipping, or has a coordinate that is not a finite number is
**refused** with the item named: it cannot be what the labeler meant, and guessing would corrupt training data.

Example::

    item = Annotated.make("img/1.png", 640, 480, boxes=[Box(10, 20, 700, 90, "car")])
    item.boxes[0].x2, item.clipped     # 640.0 1
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from modelyard.core.errors import InvalidInput

TASKS = ("classification", "multilabel", "detection", "text")


@dataclass(frozen=True)
class Box:
    """One axis-aligned box in absolute pixels; ``score`` is set for a model's proposal, None for a human label."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    score: float | None = None

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    def xywh(self) -> tuple[float, float, float, float]:
        """COCO's ``[x, y, width, height]``."""
        return (self.x1, self.y1, self.width, self.height)

    def to_list(self) -> list:
        """The manifest form: ``[x1, y1, x2, y2, label]`` (plus the score when there is one)."""
        row = [self.x1, self.y1, self.x2, self.y2, self.label]
        return row + [self.score] if self.score is not None else row

    @classmethod
    def from_list(cls, row: Sequence) -> Box:
        if len(row) not in (5, 6):
            raise InvalidInput(f"a box is [x1, y1, x2, y2, label] or [x1, y1, x2, y2, label, score], got {list(row)!r}")
        score = float(row[5]) if len(row) == 6 and row[5] is not None else None
        return cls(float(row[0]), float(row[1]), float(row[2]), float(row[3]), str(row[4]), score)


def clip_box(box: Box, width: int, height: int, item: str) -> tuple[Box, bool]:
    """The box clipped to a ``width`` x ``height`` image and whether clipping changed it; refuses (naming ``item``)
    a box with a non-finite coordinate, reversed corners, or no area inside the image."""
    coords = (box.x1, box.y1, box.x2, box.y2)
    if not all(math.isfinite(c) for c in coords):
        raise InvalidInput(f"{item}: box {list(coords)} for {box.label!r} has a coordinate that is not a number")
    if box.x2 < box.x1 or box.y2 < box.y1:
        raise InvalidInput(f"{item}: box {list(coords)} for {box.label!r} has x2 < x1 or y2 < y1")
    clipped = replace(box, x1=min(max(box.x1, 0.0), width), y1=min(max(box.y1, 0.0), height),
                      x2=min(max(box.x2, 0.0), width), y2=min(max(box.y2, 0.0), height))
    if clipped.width <= 0 or clipped.height <= 0:
        raise InvalidInput(f"{item}: box {list(coords)} for {box.label!r} lies outside the {width}x{height} image "
                           "or has no area")
    return clipped, clipped != box


@dataclass(frozen=True)
class Annotated:
    """The labels of one item: its id (the file's relative path), its size for images, and boxes, class labels
    (one for single-label classification, any number for multi-label) or a text label. ``clipped`` counts the
    boxes :meth:`make` clipped to the image. ``text`` is the item's content for the ``text`` task (a text has no
    file to point at, so it travels with its labels)."""

    item: str
    width: int = 0
    height: int = 0
    boxes: tuple[Box, ...] = ()
    labels: tuple[str, ...] = ()
    clipped: int = field(default=0, compare=False)
    text: str = ""

    @classmethod
    def make(cls, item: str, width: int = 0, height: int = 0, boxes: Iterable[Box] = (),
             labels: Iterable[str] = (), text: str = "") -> Annotated:
        """Validated construction: boxes are clipped or refused as the module says; labels are de-duplicated in
        order."""
        if not item:
            raise InvalidInput("an annotated item needs an id")
        boxes = tuple(boxes)
        if boxes and (width <= 0 or height <= 0):
            raise InvalidInput(f"{item}: boxes need the image's width and height, got {width}x{height}")
        kept, clipped = [], 0
        for box in boxes:
            box, changed = clip_box(box, width, height, item)
            kept.append(box)
            clipped += changed
        return cls(item, int(width), int(height), tuple(kept), tuple(dict.fromkeys(labels)), clipped, str(text))

    def to_entry(self) -> dict:
        """The fields a dataset manifest entry carries for these labels."""
        entry: dict = {"width": self.width, "height": self.height}
        if self.boxes:
            entry["boxes"] = [b.to_list() for b in self.boxes]
        if self.labels:
            entry["labels"] = list(self.labels)
        if self.text:
            entry["text"] = self.text
        return entry

    @classmethod
    def from_entry(cls, item: str, entry: dict) -> Annotated:
        return cls.make(item, int(entry.get("width") or 0), int(entry.get("height") or 0),
                        [Box.from_list(b) for b in entry.get("boxes", ())], entry.get("labels", ()),
                        entry.get("text", ""))


@dataclass(frozen=True)
class AnnotationSet:
    """A labeled collection: the task, the class list (its order is the class index everywhere) and the items, in a
    stable order. Construction checks what every format needs: known task, unique item ids, known classes."""

    task: str
    classes: tuple[str, ...]
    items: tuple[Annotated, ...]

    def __post_init__(self):
        if self.task not in TASKS:
            raise InvalidInput(f"unknown annotation task {self.task!r}; expected one of {', '.join(TASKS)}")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidInput("the class list names a class twice")
        seen: set[str] = set()
        known = set(self.classes)
        for annotated in self.items:
            if annotated.item in seen:
                raise InvalidInput(f"item {annotated.item!r} appears twice")
            seen.add(annotated.item)
            used = {b.label for b in annotated.boxes} | set(annotated.labels)
            unknown = sorted(used - known) if self.task != "text" or self.classes else []
            if unknown:
                raise InvalidInput(f"{annotated.item}: unknown class {unknown[0]!r}; the label set is "
                                   f"{', '.join(self.classes) or '(empty)'}")
            if self.task == "classification" and len(annotated.labels) > 1:
                raise InvalidInput(f"{annotated.item}: single-label classification item has {len(annotated.labels)} "
                                   "labels; use the multilabel task")

    def class_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}

    def by_item(self) -> dict[str, Annotated]:
        return {a.item: a for a in self.items}

    @property
    def clipped(self) -> int:
        return sum(a.clipped for a in self.items)
