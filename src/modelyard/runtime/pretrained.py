"""Pretrained detectors that ship inside PyPI wheels, found on disk without importing their packages.

nudenet's ``320n.onnx`` (``pip install 'modelyard[detection]'``) is a YOLOv8n-architecture detector of 18 body-part
classes (not a COCO model): input ``images`` ``(batch, 3, H, W)`` RGB in 0..1, trained at 320 x 320 on images
padded right and below to a square with black; output ``output0`` ``(batch, 22, 2100)`` = ``cx, cy, w, h`` + 18
class scores per anchor. Register it as a served detector with::

    modelyard models register "$(python -m modelyard.runtime.pretrained nudenet)" --name nudenet \\
        --postprocess yolov8 --preprocessing '{"size": [320, 320], "resize": "letterbox",
        "letterbox_align": "top-left", "pad_value": 0}'

(the class names come from the file's Ultralytics ``names`` metadata). To quantize it to INT8, keep its detect head
in float (:func:`yolov8_head_nodes`). :data:`NUDENET_PREPROCESSING` and
:data:`NUDENET_TASK` are the same declarations for the SDK: ``client.models.register(nudenet_onnx(), "nudenet",
preprocessing=NUDENET_PREPROCESSING, task=NUDENET_TASK)``.

NOTE: the wheel is MIT-licensed, but the ONNX file's own metadata names Ultralytics' AGPL-3.0 licence; check that
it fits your use before you ship it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from modelyard.core.extras import MissingDependency

NUDENET_PREPROCESSING = {"size": [320, 320], "resize": "letterbox", "letterbox_align": "top-left", "pad_value": 0}
# nudenet's own post-processing: score >= 0.2, NMS at IoU 0.45
NUDENET_TASK = {"type": "detection", "postprocess": {"kind": "yolov8", "score_threshold": 0.2, "iou_threshold": 0.45}}


def nudenet_onnx() -> Path:
    """The path of nudenet's ``320n.onnx``. The package is located, never imported: its ``__init__`` imports
    OpenCV, which Modelyard does not need."""
    spec = importlib.util.find_spec("nudenet")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / "320n.onnx"
        if path.is_file():
            return path
    raise MissingDependency("this needs nudenet's 320n.onnx: pip install 'modelyard[detection]' "
                            "(or pip install --no-deps nudenet)")


def yolov8_head_nodes(onnx_path: Path) -> list[str]:
    """The nodes of a YOLOv8 export's detect head to keep in float when quantizing to INT8: every node of the
    module that produces the output except its plain convolutions (the DFL convolution is kept too).

    NOTE: the head concatenates box coordinates (0..input size) and class scores (0..1) into one tensor; quantized
    with one scale, every score rounds to 0 and the INT8 model finds nothing (measured on nudenet: 0 boxes where the
    float model finds them). Pass the result as ``exclude_nodes`` of ``int8-static-keep-float``.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    output = model.graph.output[0].name
    producer = next((n for n in model.graph.node if output in n.output), None)
    if producer is None or not producer.name.startswith("/") or producer.name.count("/") < 2:
        return []
    head = "/".join(producer.name.split("/")[:2]) + "/"  # "/model.22/"
    return [n.name for n in model.graph.node
            if n.name.startswith(head) and (n.op_type != "Conv" or "/dfl/" in n.name)]


if __name__ == "__main__":  # python -m modelyard.runtime.pretrained nudenet: print the file's path
    if sys.argv[1:] != ["nudenet"]:
        sys.exit("usage: python -m modelyard.runtime.pretrained nudenet")
    print(nudenet_onnx())
