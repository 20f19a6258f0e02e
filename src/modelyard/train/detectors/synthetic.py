"""A synthetic detection set: filled shapes (circle, square, triangle) on cluttered backgrounds.

Each image has a colour gradient, pixel noise and clutter (lines, rings and small blobs that are not objects), then
1 to ``max_objects`` objects of varied size and colour. Objects may overlap earlier ones (partial occlusion), but
never hide more than ``MAX_HIDDEN`` of one; boxes are the shapes' full extent. Deterministic for a seed.
Used by the tests and ``benchmarks/automl_detection.py``.
"""

from __future__ import annotations

import numpy as np

from modelyard.data.annotations import Annotated, AnnotationSet, Box

CLASSES = ("circle", "square", "triangle")
MAX_HIDDEN = 0.35


def _covered(a: tuple, b: tuple) -> float:
    """The fraction of box ``a`` that box ``b`` covers."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / max(1e-9, (a[2] - a[0]) * (a[3] - a[1]))


def _background(rng, size: int):
    from PIL import Image, ImageDraw

    base = rng.integers(0, 256, size=(2, 3))
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    if rng.random() < 0.5:
        ramp = ramp.transpose(1, 0, 2)
    pixels = base[0] * (1 - ramp) + base[1] * ramp
    pixels = pixels + rng.normal(0, 12, size=(size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        kind = rng.random()
        x, y = rng.uniform(0, size, size=2)
        if kind < 0.5:  # thin lines
            x2, y2 = rng.uniform(0, size, size=2)
            draw.line([(x, y), (x2, y2)], fill=colour, width=int(rng.integers(1, 3)))
        elif kind < 0.8:  # rings: round like a circle, but hollow
            r = rng.uniform(3, size / 8)
            draw.ellipse([x - r, y - r, x + r, y + r], outline=colour, width=1)
        else:  # blobs too small to be objects
            r = rng.uniform(1, 2.5)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return image, draw


def make_image(rng, size: int = 128, max_objects: int = 5, min_side: float = 10, max_side: float = 48):
    """One image: ``(pixels uint8 (size, size, 3), [Box, ...])``."""
    image, draw = _background(rng, size)
    max_side = min(max_side, 0.6 * size)  # small images get proportionally small objects
    min_side = min(min_side, max_side / 2)
    boxes: list[tuple] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            side = float(np.exp(rng.uniform(np.log(min_side), np.log(max_side))))
            aspect = float(rng.uniform(0.75, 1.33))
            w, h = side * aspect ** 0.5, side / aspect ** 0.5
            x1, y1 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            box = (x1, y1, x1 + w, y1 + h)
            if all(_covered(other, box) <= MAX_HIDDEN and _covered(box, other) <= 0.9 for other, _ in boxes):
                break
        else:
            continue
        label = CLASSES[int(rng.integers(0, len(CLASSES)))]
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if label == "circle":
            draw.ellipse(box, fill=colour)
        elif label == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])], fill=colour)
        boxes.append((box, label))
    pixels = np.asarray(image, dtype=np.uint8).copy()
    return pixels, [Box(*b, label) for b, label in boxes]


def make_shapes(count: int, size: int = 128, seed: int = 0, max_objects: int = 5, prefix: str = "img"):
    """``count`` images: ``(list of pixels, AnnotationSet)`` with items named ``{prefix}/{i}.png``."""
    rng = np.random.default_rng(seed)
    images, items = [], []
    for i in range(count):
        pixels, boxes = make_image(rng, size, max_objects)
        images.append(pixels)
        items.append(Annotated.make(f"{prefix}/{i:05d}.png", size, size, boxes))
    return images, AnnotationSet("detection", CLASSES, tuple(items))
