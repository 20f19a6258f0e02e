"""Letterboxing: fit an image into a model input without distorting it, and map boxes both ways.

The image is scaled by ``min(input height / height, input width / width)`` (aspect ratio kept, bilinear), placed on
a canvas of the input's size filled with ``PAD_VALUE`` (YOLO's grey) -- centred by default, so the padding is split
evenly between the two sides (the odd pixel goes right/bottom), or in the top-left corner. A :class:`Geometry` says
where the image landed; boxes map to the canvas with :meth:`Geometry.to_input` and back to the original image with
:meth:`Geometry.to_original`. Stretching (no letterbox) is a geometry too (:func:`stretch_geometry`).

It lives in ``runtime`` (numpy and Pillow only) so training, serving, evaluation and the edge agent share this one
copy of the math: a detector Modelyard trains sees exactly the pixels it is served.

Example::

    canvas, where = letterbox(pixels, 320)           # pixels: uint8 (H, W, 3) -> (320, 320, 3)
    original = where.to_original(model_boxes)        # (K, 4) xyxy in input pixels -> original pixels
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_VALUE = 114  # the grey YOLO-family models (and Modelyard's detectors) are trained with


@dataclass(frozen=True)
class Geometry:
    """Where an ``height x width`` image lies in the model's input: ``input = original * scale + pad`` per axis."""

    height: int
    width: int
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    @property
    def resized(self) -> tuple[int, int]:
        """``(width, height)`` of the image on the canvas."""
        return max(1, round(self.width * self.scale_x)), max(1, round(self.height * self.scale_y))

    def _scale_and_offset(self) -> tuple[np.ndarray, np.ndarray]:
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y], dtype=np.float64)
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float64)
        return scale, offset

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Original-image ``xyxy`` boxes (any leading shape, last axis 4) in input pixels."""
        scale, offset = self._scale_and_offset()
        return np.asarray(boxes, dtype=np.float64) * scale + offset

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Input-pixel ``xyxy`` boxes (any leading shape, last axis 4) back in original-image pixels, clipped to
        the image."""
        scale, offset = self._scale_and_offset()
        original = (np.asarray(boxes, dtype=np.float64) - offset) / scale
        limit = np.array([self.width, self.height, self.width, self.height], dtype=np.float64)
        return np.clip(original, 0.0, limit)

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "scale_x": self.scale_x, "scale_y": self.scale_y,
                "pad_x": self.pad_x, "pad_y": self.pad_y}


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))


def letterbox_geometry(height: int, width: int, size: int | tuple[int, int], align: str = "center") -> Geometry:
    """The geometry of fitting ``height x width`` into ``size`` (an int for a square, or ``(h, w)``) keeping the
    aspect ratio; ``align`` is ``center`` or ``top-left``."""
    size_h, size_w = _size_hw(size)
    if width <= 0 or height <= 0 or size_h <= 0 or size_w <= 0:
        raise ValueError(f"letterbox needs positive sizes, got image {width}x{height} into {size_w}x{size_h}")
    scale = min(size_h / height, size_w / width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    top, left = ((size_h - new_h) // 2, (size_w - new_w) // 2) if align == "center" else (0, 0)
    # the per-axis scales are the resized image's own, so a pixel and a box corner land on the same spot
    return Geometry(height, width, new_w / width, new_h / height, float(left), float(top))


def stretch_geometry(height: int, width: int, size: tuple[int, int]) -> Geometry:
    """The geometry of stretching ``height x width`` to ``size`` (h, w), aspect ratio not kept."""
    return Geometry(height, width, size[1] / width, size[0] / height, 0.0, 0.0)


def resize_nearest(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``H x W x C`` to ``size`` (h, w) with the index arithmetic every image loader
    here shares."""
    h, w = size
    rows = (np.arange(h) * pixels.shape[0] / h).astype(int)
    cols = (np.arange(w) * pixels.shape[1] / w).astype(int)
    return pixels[rows][:, cols]


def resize_bilinear(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (Pillow) resize of ``H x W x C`` to ``size`` (h, w), as detectors are trained (Modelyard's with
    Pillow, YOLO's with OpenCV). An image already of that size is returned as is; images Pillow cannot take (not
    uint8, or a channel count other than 1 or 3) fall back to nearest neighbour."""
    if pixels.shape[:2] == tuple(size):
        return pixels
    if pixels.dtype != np.uint8 or pixels.shape[2] not in (1, 3):
        return resize_nearest(pixels, size)
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
    resized = np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return resized[:, :, None] if resized.ndim == 2 else resized


def letterbox(pixels: np.ndarray, size: int | tuple[int, int], align: str = "center",
              pad_value: float = PAD_VALUE) -> tuple[np.ndarray, Geometry]:
    """``pixels`` (``(H, W, C)``, uint8 for a bilinear resize) scaled to fit ``size`` (an int for a square, or
    ``(h, w)``) and padded with ``pad_value``; returns ``(canvas, geometry)``."""
    if pixels.ndim != 3:
        raise ValueError(f"letterbox expects (H, W, C) pixels, got shape {pixels.shape}")
    size_h, size_w = _size_hw(size)
    where = letterbox_geometry(pixels.shape[0], pixels.shape[1], (size_h, size_w), align)
    new_w, new_h = where.resized
    canvas = np.full((size_h, size_w, pixels.shape[2]), pad_value, dtype=pixels.dtype)
    top, left = int(where.pad_y), int(where.pad_x)
    canvas[top:top + new_h, left:left + new_w] = resize_bilinear(pixels, (new_h, new_w))
    return canvas, where
