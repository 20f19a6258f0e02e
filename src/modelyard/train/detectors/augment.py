"""Batch augmentation for detection, in torch on whole batches (a per-image Python loop would cost more than the
training step on a CPU).

Images arrive letterboxed once to the cache size ``S0`` as uint8 ``(N, 3, S0, S0)``; one ``grid_sample`` per batch
applies random scale (zoom in: crop, zoom out: a smaller image on the grey canvas), translation and horizontal flip
and resamples to the training size ``S``, and the boxes get the same affine map (exact: no rotation). Boxes cut to
less than ``MIN_VISIBLE`` of their area, or thinner than ``MIN_SIDE`` pixels, become padding (label -1). Mosaic tiles
four half-size images into one (more, smaller objects per step); colour jitter changes brightness, contrast,
saturation and per-channel gain.

A policy is ``none`` or parts joined by ``+`` (``mosaic``, ``scale``, ``flip``, ``color``); a search picks among
:data:`POLICIES`.
"""

from __future__ import annotations

from modelyard.runtime.letterbox import PAD_VALUE

POLICIES = ("none", "flip", "scale+flip", "scale+flip+color", "mosaic+scale+flip+color")  # what a search tries
PARTS = {"mosaic", "scale", "flip", "color"}
SCALE_RANGE = (0.6, 1.5)  # zoom factors (1 = the letterboxed image as is)
MOSAIC_PROBABILITY = 0.5  # per batch
MIN_VISIBLE = 0.4
MIN_SIDE = 1.5


def _mosaic(x, boxes, generator):
    """Tile four half-size images (this batch and three shuffles of it) into one; boxes follow."""
    import torch
    from torch.nn import functional as F

    n, _, side, _ = x.shape
    half = side // 2
    small = F.interpolate(x, size=(half, half), mode="bilinear", align_corners=False, antialias=False)
    orders = [torch.arange(n)] + [torch.randperm(n, generator=generator) for _ in range(3)]
    canvas = torch.full_like(x, PAD_VALUE / 255.0)
    parts = []
    scale = half / side
    for q, order in enumerate(orders):
        qx, qy = (q % 2) * half, (q // 2) * half
        canvas[:, :, qy:qy + half, qx:qx + half] = small[order]
        b = boxes[order].clone()
        b[..., 0:4] = b[..., 0:4] * scale + torch.tensor([qx, qy, qx, qy], dtype=b.dtype)
        parts.append(b)
    return canvas, torch.cat(parts, dim=1)


def augment_batch(images, boxes, size: int, policy: str, generator):
    """``(images float (N, 3, size, size) in 0..1, boxes (N, M', 5))`` from uint8 images ``(N, 3, S0, S0)`` and
    padded boxes ``(N, M, 5)`` in ``S0`` pixels, augmented by ``policy`` (one of :data:`POLICIES`)."""
    import torch
    from torch.nn import functional as F

    parts = set(policy.split("+"))
    if policy != "none" and not parts <= PARTS:
        raise ValueError(f"unknown augmentation policy {policy!r}: 'none' or parts of {', '.join(sorted(PARTS))} "
                         "joined by '+'")
    x = images.float().div_(255.0)
    boxes = boxes.clone()
    n, source = x.shape[0], x.shape[-1]
    if "mosaic" in policy and n > 1 and float(torch.rand(1, generator=generator)) < MOSAIC_PROBABILITY:
        x, boxes = _mosaic(x, boxes, generator)
    if "scale" in policy:
        low, high = torch.log(torch.tensor(SCALE_RANGE))
        zoom = torch.exp(low + (high - low) * torch.rand(n, generator=generator))
    else:
        zoom = torch.ones(n)
    reach = (1 - 1 / zoom).abs()
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * reach.unsqueeze(1)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if "flip" in policy else torch.ones(n)
    if "scale" in policy or "flip" in policy or size != source:
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = flip / zoom, 1 / zoom
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
        pad = PAD_VALUE / 255.0
        x = F.grid_sample(x - pad, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + pad
        # input pixel -> normalised (-1..1) -> inverse of the grid's map -> output pixel
        norm = boxes[..., 0:4] * (2.0 / source) - 1.0
        sx = (flip * zoom).view(n, 1, 1)
        sy = zoom.view(n, 1, 1)
        xs = (norm[..., 0::2] - shift[:, 0].view(n, 1, 1)) * sx
        ys = (norm[..., 1::2] - shift[:, 1].view(n, 1, 1)) * sy
        xs, ys = (xs + 1) * (size / 2.0), (ys + 1) * (size / 2.0)
        before = (xs[..., 1] - xs[..., 0]).abs() * (ys[..., 1] - ys[..., 0]).abs()
        x1, x2 = torch.minimum(xs[..., 0], xs[..., 1]).clamp(0, size), torch.maximum(xs[..., 0], xs[..., 1]).clamp(
            0, size)
        y1, y2 = ys[..., 0].clamp(0, size), ys[..., 1].clamp(0, size)
        after = (x2 - x1) * (y2 - y1)
        keep = (boxes[..., 4] >= 0) & (after >= MIN_VISIBLE * before) & (x2 - x1 >= MIN_SIDE) & (
            y2 - y1 >= MIN_SIDE)
        boxes = torch.stack([x1, y1, x2, y2, torch.where(keep, boxes[..., 4], torch.full_like(x1, -1.0))], -1)
    if "color" in policy:
        gain = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
        contrast = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=generator)
        saturation = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=generator)
        channel = 0.9 + 0.2 * torch.rand(n, 3, 1, 1, generator=generator)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        gray = x.mean(dim=1, keepdim=True)
        x = gray + (x - gray) * saturation
        x = (mean + (x - mean) * contrast) * gain * channel
        x = x.clamp_(0.0, 1.0)
    return x.contiguous(), boxes
