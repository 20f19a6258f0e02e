"""Annotation exports at scale: time and peak Python memory of each streaming writer, against the obvious in-memory
COCO export (the whole document built as a dict and dumped) run in the same process as the anchor.

Label Studio's COCO export dropped tasks on a 1,200-task project (label-studio #5544) and crashed at 50k images
(label-studio-converter #186); Modelyard's writers hold one item at a time. Labels only (no images are copied), so
the figures are the writers' own.

    python benchmarks/annotation_formats.py [--items 20000] [--boxes 3] [--data DIR]

``--data DIR`` exports the annotations of a COCO, VOC, YOLO, Label Studio or CSV folder instead of a synthetic set
(detection sets are written in every box format, classification sets as csv and labelstudio). The last line printed
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path


def _synthetic(count: int, boxes: int):
    from modelyard.data.annotations import Annotated, AnnotationSet, Box

    classes = ("car", "person", "bicycle", "dog")
    items = tuple(Annotated.make(f"{i // 1000:03d}/img{i:06d}.jpg", 640, 480,
                                 [Box(10 + 7 * j, 20 + 5 * j, 200 + 3 * j, 300 + 2 * j, classes[(i + j) % 4])
                                  for j in range(boxes)]) for i in range(count))
    return AnnotationSet("detection", classes, items)


def _measure(write, traced: bool) -> tuple[float, int]:
    """Seconds of one run and, when ``traced``, the peak traced memory of another (tracemalloc slows the run)."""
    began = time.perf_counter()
    write("timed")
    seconds = time.perf_counter() - began
    peak = 0
    if traced:
        tracemalloc.start()
        try:
            write("traced")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return seconds, peak


def _in_memory_coco(annotations, path: Path) -> None:
    """The anchor: the whole COCO document as one dict, then one json.dump."""
    index = annotations.class_index()
    document = {"categories": [{"id": i + 1, "name": n} for i, n in enumerate(annotations.classes)],
                "images": [], "annotations": []}
    for number, item in enumerate(annotations.items, start=1):
        document["images"].append({"id": number, "file_name": item.item, "width": item.width, "height": item.height})
        for box in item.boxes:
            document["annotations"].append({"id": len(document["annotations"]) + 1, "image_id": number,
                                            "category_id": index[box.label] + 1, "bbox": list(box.xywh()),
                                            "area": box.area, "iscrowd": 0})
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(json.dumps(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="synthetic images (default 20000)")
    parser.add_argument("--boxes", type=int, default=3, help="boxes per synthetic image (default 3)")
    parser.add_argument("--data", help="an annotation folder to export instead of the synthetic set")
    args = parser.parse_args()

    from modelyard.data import formats

    if args.data:
        annotations, _ = formats.read(args.data)
        source = f"{args.data} ({formats.detect(args.data)})"
    else:
        annotations = _synthetic(args.items, args.boxes)
        source = f"synthetic: {args.items} images x {args.boxes} boxes"
    targets = [f for f, tasks in formats.TASKS.items() if annotations.task in tasks]
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="modelyard-bench-") as scratch:
        root = Path(scratch)
        formats.write(_synthetic(2, 1), root / "warm-up", "coco")  # imports and first-use caches are not measured
        for fmt in targets:
            def write(tag, fmt=fmt):
                formats.write(annotations, root / f"{fmt}-{tag}", fmt)

            seconds, peak = _measure(write, traced=fmt in ("coco", "labelstudio", "csv"))
            size = sum(p.stat().st_size for p in (root / f"{fmt}-timed").rglob("*") if p.is_file())
            results[fmt] = {"seconds": round(seconds, 3), "items_per_s": round(len(annotations.items) / seconds),
                            "bytes_written": size, **({"peak_python_bytes": peak} if peak else {})}
            print(f"{fmt:12s} {seconds:7.2f} s  {len(annotations.items) / seconds:9.0f} items/s  {size:>11,d} bytes"
                  + (f"  peak {peak:,d} bytes" if peak else ""), flush=True)
        anchor = None
        if annotations.task == "detection":
            seconds, peak = _measure(lambda tag: _in_memory_coco(annotations, root / f"anchor-{tag}" / "a.json"), True)
            anchor = {"seconds": round(seconds, 3), "peak_python_bytes": peak}
            print(f"{'anchor':12s} {seconds:7.2f} s  (whole COCO document in memory)  peak {peak:,d} bytes", flush=True)
    summary = {"benchmark": "annotation_formats", "source": source, "items": len(annotations.items),
               "boxes": sum(len(a.boxes) for a in annotations.items), "formats": results,
               "anchor_in_memory_coco": anchor}
    if anchor and "coco" in results:
        summary["coco_peak_vs_anchor"] = round(results["coco"]["peak_python_bytes"] / anchor["peak_python_bytes"], 5)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
