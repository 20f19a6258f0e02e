"""Training and inference of the detectors on in-memory images.

``DetectionData`` holds images letterboxed once to one size (uint8, so 10,000 images at 256 px take 2 GB) and their
boxes padded to one tensor; the training loop samples batches from it, augments them on the fly
(:mod:`.augment`), and steps AdamW on a one-cycle schedule over a time budget or a fixed step count.
:func:`predict` letterboxes, runs the net with its decoding and maps the boxes back to each original image, as
:class:`~modelyard.data.annotations.Annotated` values :func:`coco_map` scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from modelyard.data.annotations import Annotated, Box
from modelyard.runtime.letterbox import Geometry, letterbox

BATCH = 32
SCORE_FLOOR = 0.001  # predictions below this are dropped before mAP (COCO evaluations keep the low tail)
MIN_STEPS = 8


@dataclass(frozen=True)
class DetectionData:
    """Images letterboxed to ``size`` (uint8 ``(N, 3, size, size)``) and their boxes in canvas pixels, padded to
    ``(N, M, 5)`` with class indices (``-1`` = padding)."""

    size: int
    images: np.ndarray = field(repr=False)
    boxes: np.ndarray = field(repr=False)
    params: tuple[Geometry, ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.images)


def prepare(images: Sequence[np.ndarray], items: Sequence[Annotated], classes: Sequence[str],
            size: int) -> DetectionData:
    """Letterbox ``images`` (uint8 ``(H, W, 3)``, in the order of ``items``) to ``size`` and pad their boxes."""
    index = {name: i for i, name in enumerate(classes)}
    count = len(images)
    canvas = np.empty((count, 3, size, size), dtype=np.uint8)
    most = max([len(item.boxes) for item in items] + [1])
    boxes = np.full((count, most, 5), -1.0, dtype=np.float32)
    params = []
    for i, (pixels, item) in enumerate(zip(images, items, strict=True)):
        placed, fit = letterbox(pixels, size)
        canvas[i] = placed.transpose(2, 0, 1)
        params.append(fit)
        # boxes are in the item's declared size; the pixels may be larger or smaller (a resized copy)
        sx, sy = pixels.shape[1] / max(1, item.width or pixels.shape[1]), pixels.shape[0] / max(
            1, item.height or pixels.shape[0])
        for j, box in enumerate(item.boxes):
            corners = fit.to_input(np.array([box.x1 * sx, box.y1 * sy, box.x2 * sx, box.y2 * sy]))
            boxes[i, j, :4] = corners
            boxes[i, j, 4] = index[box.label]
    return DetectionData(size, canvas, boxes, tuple(params))


def one_cycle(fraction: float, lr: float) -> float:
    """The learning rate at ``fraction`` (0..1) of a run: a cosine warm-up from ``lr / 25`` over the first 15 %,
    then a cosine decay to ``lr / 2500`` (OneCycleLR's shape, on a fraction instead of a step count)."""
    warm = 0.15
    if fraction < warm:
        return lr / 25 + (lr - lr / 25) * (1 - math.cos(math.pi * fraction / warm)) / 2
    decay = min(1.0, (fraction - warm) / (1 - warm))
    return lr / 2500 + (lr - lr / 2500) * (1 + math.cos(math.pi * decay)) / 2


def train_detector(model, data: DetectionData, *, size: int, policy: str, lr: float, seconds: float,
                   steps: int | None = None, batch: int = BATCH, seed: int = 0,
                   cancelled: Callable[[], bool] | None = None,
                   on_epoch: Callable[[float], None] | None = None) -> dict:
    """Train ``model`` in place for ``seconds`` or, with ``steps``, for exactly that many steps (the deadline still
    stops it).

    The learning rate follows :func:`one_cycle` over the fraction of the run done: of the steps with ``steps``,
    else of the time. A schedule over time ends at the deadline however the machine's speed changes on the way
    (one sized from the first steps' speed ended a 300 s run 100 s early on a machine whose load fell).
    ``on_epoch(epochs_done)`` is called after each pass over the data (for validation and checkpoints; its time
    counts).

    Returns:
        ``{"steps", "epochs", "seconds", "first_loss", "last_loss"}`` (losses averaged over the first and last ten
        steps).
    """
    import torch

    from modelyard.train.detectors.augment import augment_batch
    from modelyard.train.detectors.network import STRIDE
    from modelyard.train.detectors.targets import detection_loss

    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, boxes = torch.from_numpy(data.images), torch.from_numpy(data.boxes)
    batch = max(2, min(batch, len(data)))
    per_epoch = max(1, len(data) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr / 25, weight_decay=1e-4)
    model.train()
    model.to(memory_format=torch.channels_last)
    losses: list[float] = []
    started = time.monotonic()
    total = max(MIN_STEPS, steps) if steps is not None else None
    order, position, done = rng.permutation(len(data)), 0, 0
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= seconds or (total is not None and done >= total):
            break
        if position >= per_epoch:
            position, order = 0, rng.permutation(len(data))
            if on_epoch:
                on_epoch(done / per_epoch)
            if cancelled and cancelled():
                break
            continue  # the time the callback took counts: look at the clock again
        fraction = done / total if total is not None else elapsed / seconds
        for group in optimizer.param_groups:
            group["lr"] = one_cycle(fraction, lr)
        indices = torch.from_numpy(order[position * batch:(position + 1) * batch])
        x, b = augment_batch(images[indices], boxes[indices], size, policy, generator)
        optimizer.zero_grad(set_to_none=True)
        loss = detection_loss(model(x.contiguous(memory_format=torch.channels_last)), b, STRIDE)[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        position += 1
        done += 1
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    head, tail = losses[:10], losses[-10:]
    return {"steps": done, "epochs": done / per_epoch, "seconds": time.monotonic() - started,
            "first_loss": float(np.mean(head)) if head else math.nan,
            "last_loss": float(np.mean(tail)) if tail else math.nan}


def predict(model, data: DetectionData, items: Sequence[Annotated], classes: Sequence[str], *, batch: int = 64,
            score_floor: float = SCORE_FLOOR) -> list[Annotated]:
    """Detections for the letterboxed ``data`` as ``Annotated`` values in each original image's pixels (``items``
    give the ids and sizes, in the same order)."""
    import torch

    from modelyard.train.detectors.network import decode

    was_training = model.training
    model.eval()
    found: list[Annotated] = []
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            x = torch.from_numpy(data.images[start:start + batch]).float().div_(255.0)
            boxes, scores, labels = (t.numpy() for t in decode(*model(x)))
            for row in range(len(x)):
                item = items[start + row]
                fit = data.params[start + row]
                keep = scores[row] >= score_floor
                original = fit.to_original(boxes[row][keep])
                # the declared size may differ from the decoded pixels' (a resized copy): scale back to it
                width, height = item.width or fit.width, item.height or fit.height
                original = original * np.array([width / fit.width, height / fit.height] * 2)
                kept = [Box(*map(float, b), classes[int(c)], float(s))
                        for b, c, s in zip(original, labels[row][keep], scores[row][keep], strict=True)
                        if b[2] > b[0] and b[3] > b[1]]
                found.append(Annotated.make(item.item, width, height, kept))
    if was_training:
        model.train()
    return found


def evaluate_map(model, data: DetectionData, items: Sequence[Annotated], classes: Sequence[str]) -> dict:
    """``coco_map`` of the model's predictions on ``data`` against ``items``."""
    from modelyard.train.detection_eval import coco_map

    return coco_map(predict(model, data, items, classes), items, classes)
