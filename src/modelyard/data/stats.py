"""Statistics of a dataset version, computed once at import and stored with the (immutable) version.

Tabular: rows, rows per class (or the label's distribution), missing values per column, duplicate rows.
Images: images per class, width/height/aspect/brightness distributions, exact duplicates (same content hash),
near-duplicates (``near_duplicates.find_near_duplicates``: a hash picks candidates, pixels decide), corrupt files
with the reason.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

from modelyard.data.near_duplicates import RULE, duplicate_removals, find_near_duplicates
from modelyard.data.splits import split_counts

MAX_LISTED = 50


def _histogram(values: list[float], bins: int = 10) -> dict:
    if not values:
        return {"edges": [], "counts": []}
    array = np.asarray(values, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    if low == high:
        return {"edges": [low, high], "counts": [len(values)]}
    counts, edges = np.histogram(array, bins=bins)
    return {"edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts]}


def _summary(values: list[float]) -> dict:
    if not values:
        return {}
    array = np.asarray(values, dtype=np.float64)
    return {"min": round(float(array.min()), 4), "median": round(float(np.median(array)), 4),
            "max": round(float(array.max()), 4), "mean": round(float(array.mean()), 4)}


def tabular_stats(frame, schema: dict, split: str) -> dict:
    """Stats of a prepared table (see ``tabular.prepare_table``) and its split assignment string."""
    label = schema["label"]
    stats: dict = {
        "kind": "tabular",
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "missing": {name: int(frame[name].isna().sum()) for name in frame.columns},
        "duplicate_rows": int(frame.duplicated().sum()),
        "split": split_counts(split),
    }
    if schema["task"] == "classification":
        from modelyard.data.tabular import class_name

        counts = Counter(class_name(v) for v in frame[label].tolist())
        stats["per_class"] = {name: int(counts.get(name, 0)) for name in schema["classes"]}
        per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
        for value, side in zip(frame[label].tolist(), split, strict=True):
            bucket = per_split["train" if side == "t" else "validation"]
            key = class_name(value)
            bucket[key] = bucket.get(key, 0) + 1
        stats["per_class_split"] = per_split
    else:
        values = [float(v) for v in frame[label].tolist()]
        stats["label"] = {**_summary(values), "histogram": _histogram(values)}
    numeric = {}
    for column in schema["columns"]:
        if column["type"] == "numeric" and column["role"] != "ignored":
            values = frame[column["name"]].dropna().astype(float).tolist()
            numeric[column["name"]] = _summary(values)
    stats["numeric"] = numeric
    return stats


def image_stats(entries: list[dict], classes: list[str], read_blob: Callable[[str], bytes],
                left_out: list[dict] = ()) -> dict:
    """Stats of an image manifest's entries (each with ``label``, ``digest``, ``split`` and the facts of
    ``images.inspect_image``); ``read_blob(digest)`` gives a file's bytes for the near-duplicate check;
    ``left_out`` lists the files the import could not decode and did not store (``path``, ``label``, ``error``)."""
    good = [e for e in entries if not e.get("error")]
    per_class = Counter(e["label"] for e in good)
    widths = [e["width"] for e in good]
    heights = [e["height"] for e in good]
    aspects = [e["width"] / e["height"] for e in good if e["height"]]
    brightness = [e["brightness"] for e in good]
    by_digest: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_digest[entry["digest"]].append(entry["path"])
    duplicates = [paths for paths in by_digest.values() if len(paths) > 1]
    near_pairs = find_near_duplicates(good, read_blob)
    near = [[pair["first"], pair["second"]] for pair in near_pairs]
    near_removed = len(duplicate_removals(entries, near_pairs)["near"])
    per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    for entry in good:
        bucket = per_split["train" if entry["split"] == "t" else "validation"]
        bucket[entry["label"]] = bucket.get(entry["label"], 0) + 1
    return {
        "kind": "image-classification",
        "images": len(entries),
        "usable": len(good),
        "per_class": {name: int(per_class.get(name, 0)) for name in classes},
        "per_class_split": per_split,
        "split": split_counts(e["split"] for e in entries),
        "sizes": {
            "width": _summary(widths), "height": _summary(heights),
            "min_side": int(min(min(widths), min(heights))) if good else 0,
            "width_histogram": _histogram(widths), "height_histogram": _histogram(heights),
        },
        "aspect": {**_summary(aspects), "histogram": _histogram(aspects)},
        "brightness": {**_summary(brightness), "histogram": _histogram(brightness)},
        "modes": dict(Counter(e["mode"] for e in good)),
        "formats": dict(Counter(e["format"] for e in good)),
        "duplicates": {"groups": len(duplicates), "files": sum(len(g) - 1 for g in duplicates),
                       "examples": duplicates[:MAX_LISTED]},
        "near_duplicates": {"pairs": len(near), "files": near_removed, "examples": near[:MAX_LISTED], "rule": RULE},
        "corrupt": [{"path": e["path"], "error": e["error"]} for e in entries if e.get("error")][:1000],
        "left_out": {"files": len(left_out),
                     "examples": [{"path": e["path"], "error": e["error"]} for e in left_out][:1000]},
    }



TINY_SHARE = 0.01  # a box covering less than 1 % of its image's area is tiny ...
TINY_SIDE_PX = 8  # ... and so is one narrower or lower than 8 px: small detectors rarely find either


def annotation_stats(entries: list[dict], classes: list[str], clipped: list[dict] = ()) -> dict:
    """Stats of an object-detection manifest's entries (each with ``path``, ``split``, ``width``, ``height`` and
    ``boxes`` as ``[x1, y1, x2, y2, label(, score)]``): boxes per image, box sizes (side in pixels, and the square
    root of the share of the image a box covers), boxes and images per class, tiny boxes, and the boxes the import
    clipped to the image (``clipped``: ``[{"path", "boxes"}]``)."""
    good = [e for e in entries if not e.get("error")]
    per_class: Counter = Counter()
    images_per_class: Counter = Counter()
    per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    counts, relative, sides, tiny = [], [], [], []
    proposals = 0
    for entry in good:
        boxes = entry.get("boxes", [])
        counts.append(len(boxes))
        area = max(1, entry["width"] * entry["height"])
        bucket = per_split["train" if entry["split"] == "t" else "validation"]
        for box in boxes:
            x1, y1, x2, y2, label = box[:5]
            per_class[label] += 1
            bucket[label] = bucket.get(label, 0) + 1
            proposals += len(box) > 5 and box[5] is not None
            width, height = x2 - x1, y2 - y1
            share = width * height / area
            relative.append(share ** 0.5)
            sides.append(min(width, height))
            if share < TINY_SHARE or min(width, height) < TINY_SIDE_PX:
                tiny.append({"path": entry["path"], "box": list(box[:5])})
        images_per_class.update({box[4] for box in boxes})
    widths = [e["width"] for e in good]
    heights = [e["height"] for e in good]
    total = sum(counts)
    return {
        "kind": "object-detection",
        "images": len(entries),
        "usable": len(good),
        "boxes": total,
        "empty_images": sum(1 for c in counts if c == 0),
        "proposals": int(proposals),
        "per_class": {name: int(per_class.get(name, 0)) for name in classes},
        "images_per_class": {name: int(images_per_class.get(name, 0)) for name in classes},
        "per_class_split": per_split,
        "split": split_counts(e["split"] for e in entries),
        "boxes_per_image": {**_summary(counts), "histogram": _histogram(counts)},
        "box_sizes": {"min_side_px": {**_summary(sides), "histogram": _histogram(sides)},
                      "relative": {**_summary(relative), "histogram": _histogram(relative)}},
        "tiny": {"boxes": len(tiny), "share": round(len(tiny) / total, 4) if total else 0.0,
                 "rule": f"covers < {TINY_SHARE:.0%} of the image or is < {TINY_SIDE_PX} px on a side",
                 "examples": tiny[:MAX_LISTED]},
        "clipped": {"boxes": int(sum(c["boxes"] for c in clipped)), "images": len(clipped),
                    "examples": list(clipped)[:MAX_LISTED]},
        "sizes": {"width": _summary(widths), "height": _summary(heights),
                  "min_side": int(min(min(widths), min(heights))) if good else 0},
        "corrupt": [{"path": e["path"], "error": e["error"]} for e in entries if e.get("error")][:1000],
    }


def text_stats(entries: list[dict], classes: list[str]) -> dict:
    """Stats of a text-classification manifest's entries (``path``, ``text``, ``labels``, ``split``): texts per
    class and per split, labeled and unlabeled texts, text lengths in characters, identical texts."""
    per_class: Counter = Counter(label for e in entries for label in e["labels"])
    per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    for entry in entries:
        bucket = per_split["train" if entry["split"] == "t" else "validation"]
        for label in entry["labels"]:
            bucket[label] = bucket.get(label, 0) + 1
    lengths = [len(e["text"]) for e in entries]
    by_text: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_text[entry["text"]].append(entry["path"])
    duplicates = [paths for paths in by_text.values() if len(paths) > 1]
    return {
        "kind": "text-classification",
        "texts": len(entries),
        "labeled": sum(1 for e in entries if e["labels"]),
        "unlabeled": sum(1 for e in entries if not e["labels"]),
        "per_class": {name: int(per_class.get(name, 0)) for name in classes},
        "per_class_split": per_split,
        "split": split_counts(e["split"] for e in entries),
        "length": {**_summary(lengths), "histogram": _histogram(lengths)},
        "empty": sum(1 for e in entries if not e["text"].strip()),
        "duplicates": {"groups": len(duplicates), "texts": sum(len(g) - 1 for g in duplicates),
                       "examples": duplicates[:MAX_LISTED]},
    }


def multilabel_stats(entries: list[dict], classes: list[str]) -> dict:
    """Stats of a multilabel-classification manifest's entries (``labels``, ``split``, and the image facts):
    images per class and per split, labels per image, unlabeled images, image sizes."""
    good = [e for e in entries if not e.get("error")]
    per_class: Counter = Counter(label for e in good for label in e["labels"])
    per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    for entry in good:
        bucket = per_split["train" if entry["split"] == "t" else "validation"]
        for label in entry["labels"]:
            bucket[label] = bucket.get(label, 0) + 1
    counts = [len(e["labels"]) for e in good]
    widths = [e["width"] for e in good]
    heights = [e["height"] for e in good]
    return {
        "kind": "multilabel-classification",
        "images": len(entries),
        "usable": len(good),
        "unlabeled": sum(1 for c in counts if c == 0),
        "per_class": {name: int(per_class.get(name, 0)) for name in classes},
        "per_class_split": per_split,
        "split": split_counts(e["split"] for e in entries),
        "labels_per_image": {**_summary(counts), "histogram": _histogram(counts)},
        "sizes": {"width": _summary(widths), "height": _summary(heights),
                  "min_side": int(min(min(widths), min(heights))) if good else 0},
        "corrupt": [{"path": e["path"], "error": e["error"]} for e in entries if e.get("error")][:1000],
    }
