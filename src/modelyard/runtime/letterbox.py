"""Letterboxing: fit an image into a square model input without distorting it, and map boxes both ways.

The image is scaled by ``scale = size / max(height, width)`` (aspect ratio kept), centred on a ``size`` x ``size``
canvas filled with ``PAD_VALUE`` (YOLO's grey), so the padding is split evenly between the two sides (the odd pixel
goes right/bottom). Detectors trained by Modelyard see exactly this at training and at serving; a box the model
predicts in input pixels maps back to the original image with :meth:`LetterboxParams.to_original`.

It lives in ``runtime`` (numpy and Pillow only) so training, serving and the edge agent share one copy of the math.

Example::

    canvas, params = letterbox(pixels, 320)          # pixels: uint8 (H, W, 3)
    original = params.to_original(model_boxes)       # (K, 4) xyxy in input pixels -> original pixels
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxParams:
    """Where an ``width`` x ``height`` image sits on the ``size`` canvas: ``canvas = original * scale + pad``."""

    size: int
    width: int
    height: int
    scale: float
    pad_x: int
    pad_y: int

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> LetterboxParams:
        if width <= 0 or height <= 0 or size <= 0:
            raise ValueError(f"letterbox needs positive sizes, got image {width}x{height} into {size}")
        scale = size / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        return cls(size, width, height, scale, (size - new_w) // 2, (size - new_h) // 2)

    @property
    def resized(self) -> tuple[int, int]:
        """``(width, height)`` of the image on the canvas."""
        return max(1, round(self.width * self.scale)), max(1, round(self.height * self.scale))

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Original-image ``xyxy`` boxes (any leading shape, last axis 4) in canvas pixels."""
        boxes = np.asarray(boxes, dtype=np.float64)
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float64)
        return boxes * self.scale + offset

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Canvas ``xyxy`` boxes back in original-image pixels, clipped to the image."""
        boxes = np.asarray(boxes, dtype=np.float64)
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float64)
        original = (boxes - offset) / self.scale
        limit = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        return np.clip(original, 0.0, limit)

    def to_dict(self) -> dict:
        return {"size": self.size, "width": self.width, "height": self.height, "scale": self.scale,
                "pad_x": self.pad_x, "pad_y": self.pad_y}


def letterbox(pixels: np.ndarray, size: int, pad_value: int = PAD_VALUE) -> tuple[np.ndarray, LetterboxParams]:
    """``pixels`` (uint8 ``(H, W, 3)``) on a ``size`` x ``size`` canvas; returns ``(canvas, params)``.

    Resizing is bilinear (Pillow); an image already of the right size is copied, not resampled.
    """
    from PIL import Image

    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"letterbox expects (H, W, 3) pixels, got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    params = LetterboxParams.fit(width, height, size)
    new_w, new_h = params.resized
    if (new_w, new_h) == (width, height):
        resized = pixels
    else:
        resized = np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize((new_w, new_h),
                                                                                   Image.Resampling.BILINEAR))
    canvas = np.full((size, size, 3), pad_value, dtype=np.uint8)
    canvas[params.pad_y:params.pad_y + new_h, params.pad_x:params.pad_x + new_w] = resized
    return canvas, params
