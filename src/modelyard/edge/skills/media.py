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
    """Export a small convolutional detector with the Modelyard detector contract (input ``images`` [N,3,H,W];
    outputs ``boxes`` [N,K,4] in [0,1], ``scores`` [N,K], ``classes`` [N,K]) to ONNX. Untrained: its compute is a
    stand-in for a real small detector's in tests and the channels benchmark."""
    import torch

    class TinyDetector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            layers, channels = [], 3
            for out in (width, width * 2, width * 4, width * 4, width * 8):
                layers += [torch.nn.Conv2d(channels, out, 3, stride=2, padding=1), torch.nn.ReLU()]
                channels = out
            self.features = torch.nn.Sequential(*layers)
            self.head = torch.nn.Linear(channels, boxes * 6)

        def forward(self, images):
            pooled = self.features(images).mean(dim=(2, 3))
            raw = self.head(pooled).reshape(-1, boxes, 6)
            corner = torch.sigmoid(raw[..., :2]) * 0.8
            extent = torch.sigmoid(raw[..., 2:4]) * 0.2
            return (torch.cat([corner, corner + extent], dim=-1), torch.sigmoid(raw[..., 4]),
                    (torch.sigmoid(raw[..., 5]) * 3).floor())

    import warnings

    torch.manual_seed(0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated but exports this plain graph with a dynamic batch in one step
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(torch, TinyDetector().eval(), size, path)
    return path


def _export(torch, model, size: int, path: Path) -> None:
    torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path), input_names=["images"],
                      output_names=["boxes", "scores", "classes"], dynamo=False,
                      dynamic_axes={name: {0: "batch"} for name in ("images", "boxes", "scores", "classes")})
