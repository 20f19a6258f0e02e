"""Occlusion saliency for image classifiers, computed on the deployable ONNX model itself (no framework hooks):
slide a patch of the image's mean colour over the image and record how much the predicted class's probability
drops; the drops, upsampled to the image, are the heat map.

It works for any classifier the runtime can run, which is why it is preferred here over Grad-CAM (that needs the
training framework's gradients, and the registered artifact is ONNX).
"""

from __future__ import annotations

import io

import numpy as np


def occlusion_map(run, image: np.ndarray, target: int, patch: int | None = None, batch: int = 256) -> np.ndarray:
    """Heat map ``(H, W)`` in [0, 1] for one float image ``(C, H, W)`` (model input scale) and class ``target``.

    Args:
        run: ``run(batch) -> probabilities (N, K)``.
        image: the model input for one image.
        target: the class whose evidence is mapped (usually the predicted one).
        patch: occluder side in pixels (default ~1/7 of the smaller side, at least 2).
        batch: occluded copies per model call.
    """
    channels, height, width = image.shape
    patch = patch or max(2, min(height, width) // 7)
    stride = max(1, patch // 2)
    base = float(run(image[None])[0, target])
    fill = image.mean(axis=(1, 2), keepdims=True)
    ys = list(range(0, max(1, height - patch + 1), stride))
    xs = list(range(0, max(1, width - patch + 1), stride))
    if ys[-1] != height - patch:
        ys.append(max(0, height - patch))
    if xs[-1] != width - patch:
        xs.append(max(0, width - patch))
    positions = [(y, x) for y in ys for x in xs]
    heat = np.zeros((height, width), dtype=np.float64)
    counts = np.zeros((height, width), dtype=np.float64)
    for start in range(0, len(positions), batch):
        chunk = positions[start:start + batch]
        copies = np.repeat(image[None], len(chunk), axis=0)
        for i, (y, x) in enumerate(chunk):
            copies[i, :, y:y + patch, x:x + patch] = fill
        drops = base - run(copies.astype(np.float32))[:, target]
        for (y, x), drop in zip(chunk, drops, strict=True):
            heat[y:y + patch, x:x + patch] += drop
            counts[y:y + patch, x:x + patch] += 1
    heat = np.where(counts > 0, heat / np.maximum(counts, 1), 0.0)
    heat = np.clip(heat, 0.0, None)
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def overlay_png(image_uint8: np.ndarray, heat: np.ndarray, scale: int = 4) -> bytes:
    """PNG of the image (``(C, H, W)`` uint8) in gray with the heat map blended in red on top, enlarged ``scale``
    times. The red is opaque where the evidence is strongest (up to 85 %), so it reads at a glance on a dark digit
    as on a bright photo."""
    from PIL import Image

    gray = image_uint8.mean(axis=0) if image_uint8.shape[0] > 1 else image_uint8[0].astype(np.float64)
    alpha = 0.85 * np.sqrt(np.clip(heat, 0.0, 1.0))[..., None]  # sqrt: moderate evidence still shows
    base = np.stack([gray, gray, gray], axis=-1)
    red = np.array([235.0, 30.0, 30.0])
    rgb = (1 - alpha) * base + alpha * red
    picture = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail_scale(size: tuple[int, int], target_px: int = 160) -> int:
    """The whole-number enlargement that makes an image of ``size`` at least ``target_px`` on its long side."""
    return max(1, -(-target_px // max(size)))
