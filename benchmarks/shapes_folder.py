"""Write a synthetic image-classification folder of rendered shapes, for running benchmarks on data other than
their default (``benchmarks/active_learning.py --data DIR``).

Six classes (circle, square, triangle, cross, star, ring), 48x48 RGB PNGs; each shape with a random size,
position, rotation, fill and background colour, plus pixel noise and sometimes a distracting line, so no single
pixel or colour gives the class away.

    python benchmarks/shapes_folder.py DIR [--per-class 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

CLASSES = ("circle", "square", "triangle", "cross", "star", "ring")
SIDE = 48


def _polygon(cx, cy, radius, corners, rotation, inner=None):
    points = []
    steps = corners * (2 if inner else 1)
    for k in range(steps):
        r = radius if not inner or k % 2 == 0 else radius * inner
        angle = rotation + 2 * math.pi * k / steps
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def render(shape: str, rng: np.random.Generator):
    from PIL import Image, ImageDraw

    background = tuple(int(v) for v in rng.integers(0, 256, 3))
    fill = tuple(int((b + rng.integers(80, 176)) % 256) for b in background)
    image = Image.new("RGB", (SIDE, SIDE), background)
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(9, 17)
    cx, cy = rng.uniform(radius + 2, SIDE - radius - 2, 2)
    rotation = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    elif shape == "ring":
        width = max(2, int(radius / 3))
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], outline=fill, width=width)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, radius, 4, rotation), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, radius, 3, rotation), fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, radius, 5, rotation, inner=0.45), fill=fill)
    else:  # cross: two rotated bars
        for turn in (0.0, math.pi / 2):
            a = rotation + turn
            dx, dy = math.cos(a) * radius, math.sin(a) * radius
            draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=fill, width=max(3, int(radius / 3)))
    if rng.random() < 0.5:
        line = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.line([tuple(rng.uniform(0, SIDE, 2)), tuple(rng.uniform(0, SIDE, 2))], fill=line, width=1)
    pixels = np.asarray(image, dtype=np.int16) + rng.normal(0, 12, size=(SIDE, SIDE, 3)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_shapes(folder: Path, per_class: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for shape in CLASSES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            render(shape, rng).save(folder / shape / f"{index:04d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_shapes(Path(args.folder), args.per_class, args.seed)
    print(f"wrote {args.per_class * len(CLASSES)} images in {len(CLASSES)} classes to {args.folder}")
    print(json.dumps({"folder": str(args.folder), "images": args.per_class * len(CLASSES), "classes": len(CLASSES)}))


if __name__ == "__main__":
    main()
