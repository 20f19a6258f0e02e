"""Detection AutoML under a time budget: mAP50 and mAP50-95 on a held-out split, batch-1 latency on onnxruntime.

By default it generates a synthetic set (``train.detectors.synthetic``: three shape classes on cluttered 128 px
backgrounds, 1-5 objects of 10-48 px, partial occlusion): 1,500 train / 200 validation / 300 test images. The
search trains and selects on train/validation; the test split is scored once, on the exported ONNX model run by
onnxruntime (so the decoding inside the graph is what is measured), with ``pycocotools``.

Anchor (``shared/anchors/platform-2.md``, "Detection"): a ~100k-parameter CenterNet reached mAP50 0.947 / mAP50-95
0.674 in 300 s on 2 cores on synthetic three-class shapes. Goal here: mAP50 >= 0.9 on the synthetic set.

``--data DIR`` runs on a COCO, Pascal VOC or YOLO folder instead (read by ``modelyard.data.formats``, the format
detected or given with ``--format``), split 70/15/15 by seed.

    python benchmarks/automl_detection.py [--time-budget 300] [--threads 2] [--data DIR] [--max-latency-ms L]
        [--input-size N] [--max-trials N] [--backbone FILE] [--train 1500 --val 200 --test 300] [--seed 0]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ANCHOR = {"map50": 0.947, "map50_95": 0.674, "seconds": 300, "cores": 2, "parameters": "~100k"}
GOAL_MAP50 = 0.9


def read_folder(folder: Path, seed: int, fmt: str = "auto"):
    """``(classes, [train, validation, test])`` of ``(pixels, Annotated)`` from a COCO, VOC or YOLO folder (the
    data package's readers, format detected), split 70/15/15 by seed; sizes from the decoded images."""
    from PIL import Image

    from modelyard.core.errors import ModelyardError
    from modelyard.data import formats

    try:
        annotations, files = formats.read(folder, fmt)
    except ModelyardError as exc:
        raise SystemExit(f"error: {exc}") from None
    if annotations.task != "detection":
        raise SystemExit(f"error: {folder} holds {annotations.task} labels, not boxes")
    samples = []
    for item in annotations.items:
        with Image.open(files[item.item]) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
        samples.append((pixels, item))
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = n_test = max(1, len(samples) * 15 // 100)
    parts = (order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test])
    return annotations.classes, [[samples[i] for i in part] for part in parts]


def synthetic(train: int, val: int, test: int, seed: int):
    from modelyard.train.detectors.synthetic import make_shapes

    parts = []
    for offset, (count, prefix) in enumerate(((train, "train"), (val, "val"), (test, "test"))):
        images, annotations = make_shapes(count, seed=seed * 10 + offset, prefix=prefix)
        parts.append(list(zip(images, annotations.items, strict=True)))
    return annotations.classes, parts


def onnx_map(model: bytes, samples, classes, size: int) -> dict:
    """mAP of the exported graph on onnxruntime: letterbox, run, map the boxes back, score with pycocotools."""
    from modelyard.data.annotations import Annotated, Box
    from modelyard.runtime.letterbox import letterbox
    from modelyard.train.detection_eval import coco_map
    from modelyard.train.latency import session

    sess = session(model, threads=os.cpu_count() or 1)
    predictions = []
    for start in range(0, len(samples), 64):
        chunk = samples[start:start + 64]
        placed = [letterbox(pixels, size) for pixels, _ in chunk]
        batch = np.stack([canvas.transpose(2, 0, 1) for canvas, _ in placed]).astype(np.float32) / 255.0
        boxes, scores, labels = sess.run(["boxes", "scores", "classes"], {"image": batch})
        for row, ((_, item), (_, fit)) in enumerate(zip(chunk, placed, strict=True)):
            keep = scores[row] >= 0.001
            original = fit.to_original(boxes[row][keep])
            kept = [Box(*map(float, b), classes[int(c)], float(s))
                    for b, c, s in zip(original, labels[row][keep], scores[row][keep], strict=True)
                    if b[2] > b[0] and b[3] > b[1]]
            predictions.append(Annotated.make(item.item, item.width, item.height, kept))
    return coco_map(predictions, [item for _, item in samples], classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-budget", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=2, help="cores to use (torch and onnxruntime)")
    parser.add_argument("--data", type=Path, help="a COCO, Pascal VOC or YOLO folder instead of the synthetic set")
    parser.add_argument("--format", default="auto", help="the --data folder's format (default: detected)")
    parser.add_argument("--max-latency-ms", type=float)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--max-trials", type=int)
    parser.add_argument("--backbone", type=Path, help="a safetensors backbone to start from (save_backbone)")
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if hasattr(os, "sched_setaffinity"):  # the search uses every core it is given
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.threads]))

    from modelyard.train.automl_detection import search_detection_arrays
    from modelyard.train.latency import measure_latency

    started = time.monotonic()
    if args.data:
        classes, (train, val, test) = read_folder(args.data, args.seed, args.format)
        source = str(args.data)
    else:
        classes, (train, val, test) = synthetic(args.train, args.val, args.test, args.seed)
        source = "synthetic"
    prepared = time.monotonic() - started
    print(f"  {source}: {len(train)} train / {len(val)} validation / {len(test)} test images, classes "
          f"{list(classes)} ({prepared:.1f}s)", flush=True)
    began = time.monotonic()
    result = search_detection_arrays([p for p, _ in train], [a for _, a in train], [p for p, _ in val],
                                     [a for _, a in val], classes, time_budget_s=args.time_budget,
                                     max_trials=args.max_trials, max_latency_ms=args.max_latency_ms,
                                     input_size=args.input_size, seed=args.seed, backbone=args.backbone,
                                     log=lambda line: print(f"  {line}", flush=True))
    seconds = time.monotonic() - began
    size = result.preprocessing["size"][0]
    test_map = onnx_map(result.onnx, test, classes, size)
    sample = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    latency = measure_latency(result.onnx, {"image": sample}, max_runs=1000, max_seconds=2.0)
    print(f"\n{result}")
    print(f"cores {args.threads}, budget {args.time_budget:.0f}s, wall {seconds:.0f}s")
    print(f"test mAP50 {test_map['map50']:.4f}, mAP50-95 {test_map['map50_95']:.4f} (anchor {ANCHOR['map50']} / "
          f"{ANCHOR['map50_95']}; goal mAP50 >= {GOAL_MAP50}: "
          f"{'met' if test_map['map50'] >= GOAL_MAP50 else 'NOT met'})")
    print(f"latency batch 1 p50 {latency['p50_ms']:.3f} ms, p95 {latency['p95_ms']:.3f} ms")
    print(json.dumps({
        "benchmark": "automl_detection", "data": source, "train": len(train), "validation": len(val),
        "test": len(test), "classes": list(classes), "time_budget_s": args.time_budget, "threads": args.threads,
        "seconds": round(seconds, 1), "map50": round(test_map["map50"], 4), "map50_95": round(test_map["map50_95"], 4),
        "per_class": test_map["per_class"], "validation_map50": result.winner["map50"],
        "validation_map50_95": result.winner["map50_95"], "winner": result.winner["params"],
        "parameters": result.winner["parameters"], "trials": result.trials, "input_size": size,
        "latency_p50_ms": latency["p50_ms"], "latency_p95_ms": latency["p95_ms"], "anchor": ANCHOR,
        "goal_map50": GOAL_MAP50, "goal_met": test_map["map50"] >= GOAL_MAP50 if source == "synthetic" else None,
    }))


if __name__ == "__main__":
    main()
