"""Near-duplicate rule on MNIST: false positives among distinct digits and recall on generated copies.

Every MNIST test digit is a different picture, so any pair the rule flags among them is a false positive. For
recall, every 10th digit gets altered copies a user would call the same picture (JPEG q75 and q50, 28 -> 34 px,
brightness x0.8 + 20, and all of those combined); each copy must pair with its original.

    python benchmarks/near_duplicates_mnist.py [--images 10000] [--data DIR]

``--data DIR`` uses the images of a folder (searched recursively, so class sub-folders are fine) instead of MNIST,
taken as distinct images; the resized copies scale by the same factors (34/28, 32/28). The last line printed is
one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np


def _png(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _load_folder(folder: str, limit: int) -> list:
    """The images under ``folder`` (recursively, sorted), as grayscale or RGB uint8 arrays."""
    from PIL import Image

    paths = sorted(p for p in Path(folder).expanduser().rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    arrays = []
    for path in paths[:limit]:
        with Image.open(path) as image:
            arrays.append(np.asarray(image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")))
    if not arrays:
        raise SystemExit(f"--data: no images found under {folder}")
    return arrays


def _scaled(array, factor: float) -> tuple[int, int]:
    """(width, height) of ``array`` scaled by ``factor`` (28 -> 34 and 28 -> 32 for MNIST)."""
    return round(array.shape[1] * factor), round(array.shape[0] * factor)


def _variants(array) -> dict[str, bytes]:
    from PIL import Image

    def encode(image, fmt="PNG", **options):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, **options)
        return buffer.getvalue()

    bigger = np.asarray(Image.fromarray(array).resize(_scaled(array, 34 / 28), Image.Resampling.BICUBIC))
    brighter = np.clip(array.astype(np.float32) * 0.8 + 20, 0, 255).astype(np.uint8)
    combined = np.clip(np.asarray(Image.fromarray(array).resize(_scaled(array, 32 / 28), Image.Resampling.BICUBIC))
                       .astype(np.float32) * 0.8 + 20, 0, 255).astype(np.uint8)
    return {"jpeg75": encode(array, "JPEG", quality=75), "jpeg50": encode(array, "JPEG", quality=50),
            "resize34": encode(bigger), "brightness": encode(brighter),
            "combined": encode(combined, "JPEG", quality=80)}


def _entries(blobs: dict[str, bytes]) -> list[dict]:
    import hashlib

    from modelyard.data.images import inspect_image

    entries = []
    for path, data in blobs.items():
        digest = hashlib.sha256(data).hexdigest()
        entries.append({"path": path, "digest": digest, **inspect_image(data)})
    return entries


def main() -> None:
    from modelyard.data.near_duplicates import find_near_duplicates
    from modelyard.data.samples import load_mnist

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--data", metavar="DIR", help="folder of images (class sub-folders allowed) instead of MNIST")
    args = parser.parse_args()
    if args.data:
        x = _load_folder(args.data, args.images)
    else:
        x, _ = load_mnist()["test"]
        x = x[:args.images]
    files = {f"d/{i}.png": _png(image) for i, image in enumerate(x)}
    by_digest = {}
    entries = _entries(files)
    for entry, data in zip(entries, files.values(), strict=True):
        by_digest[entry["digest"]] = data
    started = time.monotonic()
    pairs = find_near_duplicates(entries, by_digest.__getitem__)
    seconds = time.monotonic() - started
    flagged = {p for pair in pairs for p in (pair["first"], pair["second"])}
    figures = {"schema": "modelyard.bench-near-duplicates/1", "data": args.data or "mnist-test", "images": len(x),
               "flagged_pairs": len(pairs), "flagged_images": len(flagged),
               "false_positive_rate": len(flagged) / len(x), "seconds": round(seconds, 2), "recall": {}}
    print(f"distinct digits: {len(x)}, flagged pairs {len(pairs)}, images in a flagged pair {len(flagged)} "
          f"({100 * len(flagged) / len(x):.3f} %), {seconds:.1f} s")
    originals = range(0, len(x), 10)
    for name in ("jpeg75", "jpeg50", "resize34", "brightness", "combined"):
        copies = {f"c/{i}.{name}": _variants(x[i])[name] for i in originals}
        more = _entries(copies)
        for entry, data in zip(more, copies.values(), strict=True):
            by_digest[entry["digest"]] = data
        subset = [e for e in entries if int(e["path"][2:-4]) % 10 == 0] + more
        found = {(p["first"], p["second"]) for p in find_near_duplicates(subset, by_digest.__getitem__)}
        hits = sum((f"d/{i}.png", f"c/{i}.{name}") in found for i in originals)
        wrong = sum(1 for a, b in found if a.startswith("d/") and b.startswith("c/") and a[2:-4] != b[2:].split(".")[0])
        print(f"recall {name}: {hits}/{len(originals)} ({100 * hits / len(originals):.1f} %), copies paired with "
              f"a different digit: {wrong}")
        figures["recall"][name] = {"hits": hits, "originals": len(originals), "recall": hits / len(originals),
                                   "paired_with_other": wrong}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
