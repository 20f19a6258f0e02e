"""CenterNet training targets and loss, vectorised over the batch.

Boxes travel as a padded tensor ``(N, M, 5)``: ``x1, y1, x2, y2`` in input pixels and the class index, ``-1`` for
padding. Each box puts an elliptical Gaussian on its class's heatmap (TTFNet's ``sigma = 0.54 * side / 6`` per axis,
so elongated boxes get elongated peaks), exactly 1 at the cell holding its centre; the size and offset heads are
trained at that cell only.
"""

from __future__ import annotations

GAUSSIAN_ALPHA = 0.54
MIN_SIGMA = 0.35  # cells: a tiny object still gets a peak its neighbours respect
SIZE_WEIGHT = 1.0
OFFSET_WEIGHT = 1.0


def centres(boxes, stride: int, grid_w: int, grid_h: int):
    """Per box: integer centre cell ``(ix, iy)``, sub-cell offset, log size in cells and the validity mask."""
    import torch

    valid = boxes[..., 4] >= 0
    x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    cx, cy = (x1 + x2) / (2 * stride), (y1 + y2) / (2 * stride)
    ix = cx.floor().clamp(0, grid_w - 1)
    iy = cy.floor().clamp(0, grid_h - 1)
    w = ((x2 - x1) / stride).clamp(min=1e-2)
    h = ((y2 - y1) / stride).clamp(min=1e-2)
    return ix, iy, torch.stack([cx - ix, cy - iy], -1), torch.stack([w.log(), h.log()], -1), w, h, valid


def heatmap_targets(boxes, n_classes: int, grid_h: int, grid_w: int, stride: int):
    """The target heatmap ``(N, C, H, W)`` for ``boxes`` ``(N, M, 5)``."""
    import torch

    n, m = boxes.shape[:2]
    ix, iy, _, _, w, h, valid = centres(boxes, stride, grid_w, grid_h)
    sx = (GAUSSIAN_ALPHA * w / 6).clamp(min=MIN_SIGMA)
    sy = (GAUSSIAN_ALPHA * h / 6).clamp(min=MIN_SIGMA)
    gx = torch.arange(grid_w, dtype=boxes.dtype).view(1, 1, grid_w)
    gy = torch.arange(grid_h, dtype=boxes.dtype).view(1, 1, grid_h)
    ex = torch.exp(-((gx - ix.unsqueeze(-1)) ** 2) / (2 * sx.unsqueeze(-1) ** 2))
    ey = torch.exp(-((gy - iy.unsqueeze(-1)) ** 2) / (2 * sy.unsqueeze(-1) ** 2))
    gauss = (ey.unsqueeze(-1) * ex.unsqueeze(-2)) * valid.to(boxes.dtype).view(n, m, 1, 1)
    heat = torch.zeros(n, n_classes, grid_h * grid_w, dtype=boxes.dtype)
    if m == 0:
        return heat.view(n, n_classes, grid_h, grid_w)
    cls = boxes[..., 4].clamp(min=0).long().view(n, m, 1).expand(n, m, grid_h * grid_w)
    heat.scatter_reduce_(1, cls, gauss.reshape(n, m, grid_h * grid_w), reduce="amax")
    return heat.view(n, n_classes, grid_h, grid_w)


def focal_loss(logits, target):
    """CenterNet's penalty-reduced focal loss, normalised by the number of object centres."""
    import torch
    from torch.nn import functional as F

    positive = target.ge(0.999).to(logits.dtype)
    # log-sigmoid forms: stable where the probability is near 0 or 1
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos = log_p * (1 - p) ** 2 * positive
    neg = log_not_p * p ** 2 * (1 - target) ** 4 * (1 - positive)
    return -(pos.sum() + neg.sum()) / positive.sum().clamp(min=1.0)


def detection_loss(outputs, boxes, stride: int) -> tuple:
    """Total loss and its parts ``(total, heatmap, size, offset)`` for the net's outputs and padded boxes."""
    heat_logits, log_size, offset = outputs
    n, c, h, w = heat_logits.shape
    target = heatmap_targets(boxes, c, h, w, stride)
    heat = focal_loss(heat_logits, target)
    ix, iy, shift, size, _, _, valid = centres(boxes, stride, w, h)
    if boxes.shape[1] == 0:
        zero = heat * 0
        return heat, heat, zero, zero
    index = (iy * w + ix).long().unsqueeze(1).expand(n, 2, boxes.shape[1])
    mask = valid.to(heat_logits.dtype).unsqueeze(1)
    count = mask.sum().clamp(min=1.0) * 2
    size_loss = ((log_size.reshape(n, 2, h * w).gather(2, index) - size.transpose(1, 2)).abs() * mask).sum() / count
    offset_loss = ((offset.reshape(n, 2, h * w).gather(2, index) - shift.transpose(1, 2)).abs() * mask).sum() / count
    total = heat + SIZE_WEIGHT * size_loss + OFFSET_WEIGHT * offset_loss
    return total, heat, size_loss, offset_loss
