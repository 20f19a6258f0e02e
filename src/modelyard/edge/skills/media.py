"""Test media made on the spot: H.264 videos (PyAV) and rendered text lines (PIL), for self-checks, tests and the
benchmarks, so none of them needs a downloaded clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """A dark frame with a bright square that moves one step per frame, and a brightness that cycles every
    20 frames (frames 0-9 dim, 10-19 bright) so a brightness-threshold skill sees both kinds."""
    frame = np.full((height, width, 3), 40 if (index // 10) % 2 == 0 else 200, dtype=np.uint8)
    side = max(4, min(width, height) // 4)
    x = (index * 7) % max(1, width - side)
    y = (index * 3) % max(1, height - side)
    frame[y:y + side, x:x + side] = (255, 255, 255)
    return frame


def write_video(path: str | Path, *, width: int = 160, height: int = 96, fps: int = 10, seconds: float = 2.0,
                codec: str = "h264", gop: int = 10) -> Path:
    """Encode ``synthetic_frame`` s to an H.264 MP4 (``width`` and ``height`` must be even)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"} if codec in ("h264", "libx264") else {}
        for index in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(index, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def render_text(text: str, *, height: int = 48, font_size: int = 28) -> np.ndarray:
    """Black text on white, one line, as an RGB array (the OCR self-check and benchmark read it back)."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.truetype("DejaVuSans.ttf", font_size)
    except OSError:
        font = ImageFont.load_default(size=font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    width = right - left + 2 * font_size
    image = Image.new("RGB", (width, max(height, bottom - top + font_size)), "white")
    ImageDraw.Draw(image).text((font_size - left, (image.height - (bottom - top)) // 2 - top), text, fill="black",
                               font=font)
    return np.asarray(image)


def write_tiny_detector(path: str | Path, *, size: int = 320, boxes: int = 20, width: int = 16) -> Path:
    """Write a small convolutional detector with the Modelyard detector contract (input ``images`` [N,3,H,W];
    outputs ``boxes`` [N,K,4] in [0,1], ``scores`` [N,K], ``classes`` [N,K]) as ONNX. Untrained (seeded random
    weights): its compute is a stand-in for a real small detector's in tests and the channels benchmark.

    Five stride-2 3x3 convolutions with ReLU (``width`` .. ``8*width`` channels), a global average pool and a linear
    head of ``boxes * 6`` values: box corner (sigmoid * 0.8), extent (sigmoid * 0.2), score (sigmoid) and class
    (floor(sigmoid * 3)). Built with ``onnx.helper`` (no torch import: seconds saved wherever a test needs one).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nodes, weights, channels, current = [], [], 3, "images"
    for index, out in enumerate((width, width * 2, width * 4, width * 4, width * 8)):
        bound = 1 / np.sqrt(channels * 9)  # torch's default uniform init range for a conv
        weights += [numpy_helper.from_array(rng.uniform(-bound, bound, (out, channels, 3, 3)).astype(np.float32),
                                            f"conv{index}.w"),
                    numpy_helper.from_array(rng.uniform(-bound, bound, out).astype(np.float32), f"conv{index}.b")]
        nodes += [helper.make_node("Conv", [current, f"conv{index}.w", f"conv{index}.b"], [f"conv{index}"],
                                   kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"conv{index}"], [f"relu{index}"])]
        channels, current = out, f"relu{index}"
    bound = 1 / np.sqrt(channels)
    weights += [numpy_helper.from_array(rng.uniform(-bound, bound, (channels, boxes * 6)).astype(np.float32), "head.w"),
                numpy_helper.from_array(rng.uniform(-bound, bound, boxes * 6).astype(np.float32), "head.b")]
    constants = {"shape": np.array([-1, boxes, 6], np.int64), "s0": np.array([0], np.int64),
                 "s2": np.array([2], np.int64), "s4": np.array([4], np.int64), "s5": np.array([5], np.int64),
                 "s6": np.array([6], np.int64), "axis": np.array([2], np.int64),
                 "corner_scale": np.array(0.8, np.float32), "extent_scale": np.array(0.2, np.float32),
                 "class_scale": np.array(3.0, np.float32)}
    weights += [numpy_helper.from_array(value, name) for name, value in constants.items()]

    def piece(start: str, end: str, name: str) -> None:
        nodes.append(helper.make_node("Slice", ["raw", start, end, "axis"], [name]))

    nodes += [helper.make_node("GlobalAveragePool", [current], ["pooled4d"]),
              helper.make_node("Flatten", ["pooled4d"], ["pooled"], axis=1),
              helper.make_node("Gemm", ["pooled", "head.w", "head.b"], ["head"]),
              helper.make_node("Reshape", ["head", "shape"], ["raw"])]
    piece("s0", "s2", "raw_corner")
    piece("s2", "s4", "raw_extent")
    piece("s4", "s5", "raw_score")
    piece("s5", "s6", "raw_class")
    nodes += [helper.make_node("Sigmoid", ["raw_corner"], ["corner_sig"]),
              helper.make_node("Mul", ["corner_sig", "corner_scale"], ["corner"]),
              helper.make_node("Sigmoid", ["raw_extent"], ["extent_sig"]),
              helper.make_node("Mul", ["extent_sig", "extent_scale"], ["extent"]),
              helper.make_node("Add", ["corner", "extent"], ["far"]),
              helper.make_node("Concat", ["corner", "far"], ["boxes"], axis=-1),
              helper.make_node("Sigmoid", ["raw_score"], ["score3d"]),
              helper.make_node("Squeeze", ["score3d", "axis"], ["scores"]),
              helper.make_node("Sigmoid", ["raw_class"], ["class_sig"]),
              helper.make_node("Mul", ["class_sig", "class_scale"], ["class_scaled"]),
              helper.make_node("Floor", ["class_scaled"], ["class3d"]),
              helper.make_node("Squeeze", ["class3d", "axis"], ["classes"])]
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", boxes, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", boxes]),
         helper.make_tensor_value_info("classes", TensorProto.FLOAT, ["batch", boxes])],
        initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="modelyard")
    model.ir_version = 8  # readable by every onnxruntime the runtime supports
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path
