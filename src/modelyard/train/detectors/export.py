"""ONNX export of a detector with its decoding inside the graph, so any runtime (and the edge) serves it without
Python post-processing.

The graph: input ``image`` float32 ``(batch, 3, S, S)``, RGB scaled to 0..1, letterboxed with grey
(``runtime.letterbox``); outputs ``boxes`` float32 ``(batch, K, 4)`` xyxy in input pixels, ``scores`` float32
``(batch, K)`` best first and ``classes`` int64 ``(batch, K)`` (indices into the ``modelyard.classes`` metadata).
Slots beyond the image's peaks score 0. Metadata props (``modelyard.*``, JSON values): ``task`` = ``detection``,
``classes``, ``input`` (name, size, layout, scale, dtype), ``letterbox`` (pad value, centred) and ``outputs``.
"""

from __future__ import annotations

import io
import json
import logging
import warnings

from modelyard.runtime.letterbox import PAD_VALUE

OUTPUTS = ("boxes", "scores", "classes")


def detector_metadata(classes, size: int, top_k: int, extra: dict | None = None) -> dict:
    """What a served detector needs to know beyond its graph (stored as ``modelyard.*`` metadata props)."""
    return {
        "task": "detection",
        "classes": list(classes),
        "input": {"name": "image", "size": [size, size], "layout": "NCHW", "dtype": "float32", "scale": 1 / 255.0,
                  "channels": 3, "color": "RGB"},
        "letterbox": {"pad_value": PAD_VALUE, "align": "center", "scale": "size / max(height, width)"},
        "outputs": {"boxes": "xyxy input pixels", "scores": "0..1, best first", "classes": "index into classes",
                    "top_k": top_k},
        **(extra or {}),
    }


def export_detector(net, size: int, metadata: dict, top_k: int = 100) -> bytes:
    """The ONNX bytes of ``net`` plus decoding (see the module docstring); dynamic batch."""
    import onnx
    import torch

    from modelyard.train.detectors.network import with_decoding

    net.eval()
    module = with_decoding(net, top_k).eval()
    example = torch.rand(1, 3, size, size)
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer = io.BytesIO()
            # the TorchScript exporter takes a fraction of a second where the dynamo one takes seconds: it runs for
            # every contender of a search
            torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["image"],
                              output_names=list(OUTPUTS), opset_version=17,
                              dynamic_axes={"image": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUTS}})
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    proto = onnx.load_model_from_string(buffer.getvalue())
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"modelyard.{key}", json.dumps(value)
    return proto.SerializeToString()
