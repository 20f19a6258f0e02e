"""CenterNet-style detectors in pure PyTorch (torchvision is not usable with our torch build).

A compact backbone (stride-2 stem, then stages at strides 4, 8 and 16 with ``depth`` residual 3x3 blocks each, widths
``w, w, 2w, 4w``) feeds a small top-down neck back to stride 4, where three heads predict per cell: a class heatmap
(one channel per class), the box size (log width/height in cells) and the sub-cell centre offset. Objects are the
heatmap's peaks, found by a 3x3 max-pool (no NMS), so decoding is a handful of tensor ops that export to ONNX.

``DetectorExport`` wraps a trained net with its decoding for export: input ``image`` float32 ``(N, 3, S, S)`` RGB
scaled to 0..1 and letterboxed (``runtime.letterbox``); outputs ``boxes`` ``(N, K, 4)`` xyxy in input pixels,
``scores`` ``(N, K)`` and ``classes`` ``(N, K)`` int64, the top ``K`` peaks best first (scores of the unused slots
are 0).
"""

from __future__ import annotations

import math

STRIDE = 4
SIZE_MULTIPLE = 16  # the backbone halves the map four times
TOP_K = 100  # COCO's maxDets
HEATMAP_PRIOR = 0.05  # initial heatmap probability: the focal loss starts near its optimum for empty cells


def build_detector(n_classes: int, width: int = 16, depth: int = 1, mean=(0.45, 0.45, 0.45),
                   std=(0.25, 0.25, 0.25)):
    """A CenterNet-style detector ``net(x) -> (heatmap_logits, log_size, offset)`` at stride 4.

    Args:
        n_classes: heatmap channels.
        width: channels of the first stages (the deepest has ``4 * width``). Default 16 (~90k parameters).
        depth: residual blocks per stage. Default 1.
        mean, std: input normalisation applied inside the net (inputs are 0..1).
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                             nn.ReLU(inplace=True))

    class Residual(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(channels)

        def forward(self, x):
            return F.relu(x + self.bn(self.conv(x)))

    def stage(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(conv_bn(c_in, c_out, 2), *[Residual(c_out) for _ in range(depth)])

    def head(c_out: int, bias: float = 0.0) -> nn.Sequential:
        last = nn.Conv2d(width, c_out, 1)
        nn.init.constant_(last.bias, bias)
        return nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.ReLU(inplace=True), last)

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv_bn(3, width, 2)
            self.stage4 = stage(width, width)
            self.stage8 = stage(width, 2 * width)
            self.stage16 = stage(2 * width, 4 * width)

        def forward(self, x):
            c4 = self.stage4(self.stem(x))
            c8 = self.stage8(c4)
            return c4, c8, self.stage16(c8)

    class CenterNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))
            self.backbone = Backbone()
            self.lateral16 = nn.Conv2d(4 * width, width, 1)
            self.lateral8 = nn.Conv2d(2 * width, width, 1)
            self.lateral4 = nn.Conv2d(width, width, 1)
            self.fuse = conv_bn(width, width)
            self.heatmap = head(n_classes, -math.log((1 - HEATMAP_PRIOR) / HEATMAP_PRIOR))
            self.size = head(2)
            self.offset = head(2, 0.5)
            self.n_classes = n_classes

        def forward(self, x):
            c4, c8, c16 = self.backbone((x - self.mean) / self.std)
            p = F.interpolate(self.lateral16(c16), scale_factor=2.0, mode="nearest") + self.lateral8(c8)
            p = F.interpolate(p, scale_factor=2.0, mode="nearest") + self.lateral4(c4)
            p = self.fuse(p)
            return self.heatmap(p), self.size(p), self.offset(p)

    return CenterNet()


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def decode(heatmap_logits, log_size, offset, top_k: int = TOP_K, stride: int = STRIDE):
    """Peaks of the heatmap as boxes: ``(boxes (N, K, 4) xyxy in input pixels, scores (N, K), classes (N, K))``.

    A cell is a peak when it equals the 3x3 max around it (CenterNet's NMS-free suppression); the ``K`` best peaks
    over all classes are kept (``K`` is at most the number of cells times classes).
    """
    import torch
    from torch.nn import functional as F

    n, c, h, w = heatmap_logits.shape
    cells = h * w
    k = min(top_k, c * cells)
    heat = torch.sigmoid(heatmap_logits)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).to(heat.dtype)
    scores, index = peaks.reshape(n, c * cells).topk(k, dim=1)
    classes = torch.div(index, cells, rounding_mode="floor")
    position = index - classes * cells
    ys = torch.div(position, w, rounding_mode="floor")
    xs = position - ys * w
    where = position.unsqueeze(1).expand(n, 2, k)
    shift = offset.reshape(n, 2, cells).gather(2, where)
    size = torch.exp(log_size.reshape(n, 2, cells).gather(2, where).clamp(max=8.0)) * stride
    cx = (xs.to(heat.dtype) + shift[:, 0]) * stride
    cy = (ys.to(heat.dtype) + shift[:, 1]) * stride
    limit = float(w * stride)
    boxes = torch.stack([cx - size[:, 0] / 2, cy - size[:, 1] / 2, cx + size[:, 0] / 2, cy + size[:, 1] / 2], dim=2)
    return boxes.clamp(0.0, limit), scores, classes


def with_decoding(net, top_k: int = TOP_K):
    """``net`` and its decoding as one module, ``forward(image) -> (boxes, scores, classes)``: what is exported."""
    from torch import nn

    class DetectorExport(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image):
            return decode(*self.net(image), top_k=top_k)

    return DetectorExport()


def save_backbone(model, path) -> None:
    """Write the backbone's weights (``backbone.*``) to a safetensors file, to start another detector from."""
    from safetensors.torch import save_file

    state = {f"backbone.{k}": v.detach().contiguous() for k, v in model.backbone.state_dict().items()}
    save_file(state, str(path))


def load_backbone(model, path) -> int:
    """Load a local safetensors file's ``backbone.*`` tensors (or unprefixed ones) into ``model.backbone``.

    Every backbone tensor must be present with the right shape (the file must come from a detector of the same
    width and depth); nothing is downloaded. Returns the number of tensors loaded.
    """
    from safetensors.torch import load_file

    from modelyard.core.errors import InvalidInput

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for corrupt files
        raise InvalidInput(f"pretrained backbone {path}: not a readable safetensors file ({exc})") from None
    tensors = {k.removeprefix("backbone."): v for k, v in tensors.items()}
    expected = model.backbone.state_dict()
    missing = [k for k in expected if k not in tensors]
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        first = (missing or wrong)[0]
        raise InvalidInput(f"pretrained backbone {path}: {len(missing)} tensor(s) missing and {len(wrong)} of another "
                           f"shape (first: {first!r}); it must come from a detector of the same width and depth")
    model.backbone.load_state_dict({k: tensors[k] for k in expected})
    return len(expected)
