"""Image bytes -> an input tensor, as the signature's preprocessing says (resize, scale, mean/std, layout).

The tensor is built by :func:`modelyard.runtime.detection.image_tensor` (nearest-neighbour stretch, or a bilinear
letterbox for detectors), the same code as the runtime's image-folder loader and ``modelyard evaluate``, so a
service, a batch job over an image folder and ``migrate compare --data images/`` see the same tensor.
"""

from __future__ import annotations

import io

import numpy as np

from modelyard.deploy.errors import BadRequest
from modelyard.registry.signature import TensorSpec
from modelyard.runtime.detection import image_tensor

MAX_PIXELS = 64 * 1024 * 1024  # decompression-bomb guard, whatever the model
MIN_PIXEL_CAP = 4096 * 4096  # a phone photo always fits
PIXEL_FACTOR = 64  # else at most 64x the pixels the model looks at: a 224x224 model never needs 8192x8192


def pixel_limit(height: int, width: int) -> int:
    """Most pixels an image sent to a model whose input is ``height x width`` may have (decoding costs ~3 bytes a
    pixel and time: a 195 KB PNG of 8192x8192 took a replica ~1 GiB and 1.5 s)."""
    return min(MAX_PIXELS, max(MIN_PIXEL_CAP, PIXEL_FACTOR * int(height) * int(width)))


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """PNG/JPEG bytes -> ``H x W x C`` uint8 (C is 1 or 3); refused, before decoding, above ``max_pixels``."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is in the ml extra
        raise BadRequest(f"image input needs Pillow: {exc}") from None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in ("PNG", "JPEG"):
                raise BadRequest(f"body is a {img.format} image; send PNG or JPEG")
            if img.width * img.height > max_pixels:
                raise BadRequest(f"image of {img.width}x{img.height} pixels is too large: this model takes at most "
                                 f"{max_pixels} pixels ({img.width * img.height} sent); resize it first")
            array = np.asarray(img.convert("L" if img.mode in ("L", "I;16", "I") else "RGB"))
    except BadRequest:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises UnidentifiedImageError, OSError, DecompressionBomb...
        raise BadRequest(f"body is not a readable PNG or JPEG image ({type(exc).__name__})") from None
    return array[:, :, None] if array.ndim == 2 else array


def target_size(pre: dict, target: TensorSpec) -> tuple[int, int]:
    """The ``(height, width)`` an image is resized to for ``target``."""
    size = pre.get("size")
    if size is None:
        shape = target.shape
        size = (shape[2], shape[3]) if pre.get("layout", "NCHW") == "NCHW" else (shape[1], shape[2])
    return int(size[0]), int(size[1])


def preprocess(pixels: np.ndarray, pre: dict, target: TensorSpec) -> np.ndarray:
    """``H x W x C`` uint8 -> ``[1, C, H, W]`` (or NHWC) in the input's dtype."""
    channels = target.shape[1] if pre.get("layout", "NCHW") == "NCHW" else target.shape[3]
    return image_tensor(pixels, pre, target_size(pre, target), channels, target.dtype)
