"""Detection INT8 benchmark (issue 14): nudenet's pretrained YOLOv8n detector (``320n.onnx``), float32 (the anchor)
vs INT8 through Modelyard's migration passes, compared box by box with the compare engine, same machine, same run.

Variants: ``int8-static`` as is, and ``int8-static-keep-float`` with the detect head in float
(``modelyard.runtime.pretrained.yolov8_head_nodes``: the head concatenates 0..320 pixel coordinates and 0..1 scores
into one tensor, which one INT8 scale cannot hold). Each is calibrated on the images and compared against the float
model on them through the declared yolov8 post-processor: box agreement (2 x matched / (reference + target boxes),
same class, IoU >= 0.5), mean IoU of matched boxes, output cosine. Latency: batch 1, onnxruntime CPU, one thread
per core (p50 / p95 of at least 20 runs).

Data: ``--data DIR`` (a folder of images; nudenet detects people, so photos of people give meaningful agreement);
default: the two photos scikit-learn ships (no people: few, low-scoring boxes, hence the default threshold 0.02).

Usage::

    python benchmarks/detection_int8.py                            # ~1 min on 2 cores
    python benchmarks/detection_int8.py --data photos/ --threshold 0.25 --samples 50

The last line printed is one JSON object.
"""

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder of images (default: scikit-learn's two sample photos)")
    parser.add_argument("--samples", type=int, default=16, help="images to calibrate on and compare (default 16)")
    parser.add_argument("--threshold", type=float, default=0.02, help="score threshold of the boxes compared")
    args = parser.parse_args()

    from modelyard.migrate.model.compare import compare_models
    from modelyard.migrate.model.passes import get_pass
    from modelyard.runtime.pretrained import NUDENET_PREPROCESSING, nudenet_onnx, yolov8_head_nodes
    from modelyard.runtime.spec import Artifact, ModelSpec
    from modelyard.train.latency import measure_latency, session

    model = nudenet_onnx()
    with tempfile.TemporaryDirectory(prefix="modelyard-detection-int8-") as scratch:
        work = Path(scratch)
        data = Path(args.data) if args.data else _sample_photos(work / "photos")
        spec = ModelSpec.model_validate({
            "onnx": str(model), "inputs": [{"name": "images", "shape": [1, 3, 320, 320]}],
            "preprocessing": NUDENET_PREPROCESSING,
            "task": {"type": "detection", "postprocess": {"kind": "yolov8", "score_threshold": args.threshold}}})
        feed = {"images": np.random.default_rng(0).random((1, 3, 320, 320), dtype=np.float32)}
        float_latency = measure_latency(session(model.read_bytes(), threads=0), feed)
        variants = {"int8-static": {}, "int8-static-keep-float": {"exclude_nodes": yolov8_head_nodes(model)}}
        results = {}
        for name, extra in variants.items():
            started = time.perf_counter()
            quantized = get_pass(name).run(Artifact("onnx", model, spec),
                                           {"calibration": str(data), "samples": args.samples, **extra},
                                           work / name).artifact.path
            seconds = time.perf_counter() - started
            compared = compare_models(spec, "onnxruntime:cpu", "onnxruntime:cpu", target_model=quantized,
                                      samples=args.samples, data=str(data), cache_dir=work / "cache",
                                      noise_floor_samples=0).to_dict()
            task = compared["task"]
            results[name] = {
                "size_bytes": quantized.stat().st_size, "quantize_s": round(seconds, 1),
                "latency": measure_latency(session(quantized.read_bytes(), threads=0), feed),
                "box_agreement": task.get("box_agreement"), "matched_boxes": task.get("matched_boxes"),
                "reference_boxes": task.get("reference_boxes"), "target_boxes": task.get("target_boxes"),
                "mean_iou": task.get("mean_iou"), "max_score_diff": task.get("max_score_diff"),
                "output_cosine": compared["outputs"][0].get("cosine"), "verdict": compared["verdict"]}
            print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    summary = {"benchmark": "detection_int8", "model": "nudenet 320n.onnx (YOLOv8n, 18 classes)",
               "data": str(args.data or "scikit-learn sample photos"), "samples": args.samples,
               "threshold": args.threshold,
               "float32": {"size_bytes": model.stat().st_size, "latency": float_latency}, **results}
    print(json.dumps(summary))
    return 0


def _sample_photos(folder: Path) -> Path:
    found = importlib.util.find_spec("sklearn")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("no --data and no scikit-learn sample photos: pass --data DIR")
    folder.mkdir(parents=True)
    for name in ("flower.jpg", "china.jpg"):
        shutil.copy(Path(found.submodule_search_locations[0]) / "datasets" / "images" / name, folder / name)
    return folder


if __name__ == "__main__":
    sys.exit(main())
