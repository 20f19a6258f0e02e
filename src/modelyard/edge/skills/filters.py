"""Hard-example filters that run on the device (HiLens' three), and the gate that bounds and deduplicates uploads.

Same semantics and defaults as the platform's ``modelyard.data.hard_examples`` (KubeEdge Sedna's filters), so a
threshold tuned on either side means the same on the other (this package may not import ``data``: the device agent
installs only core, runtime and edge.skills):

- classification, ``cross_entropy``: confidence = 1 - entropy / log(classes); hard below ``threshold`` (0.5).
- detection, ``ibt`` (image-box threshold): hard when the share of boxes scoring at most ``box_threshold`` (0.5) is
  at least ``1 - img_threshold`` (0.5).
- detection, ``csf`` (confidence-score filter): hard when any box scores within ``[low, high]`` (0.3, 0.6).
- an image with no boxes is hard for both detection filters (the model found nothing; a labeler must confirm).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

FILTERS = ("cross_entropy", "ibt", "csf")


def prediction_entropy(probabilities) -> float:
    """Entropy in nats of one probability vector (normalised first; zeros contribute nothing)."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if p.size < 2 or np.any(p < 0) or p.sum() <= 0:
        raise ValueError("probabilities must be a non-negative vector of at least 2 classes")
    p = p / p.sum()
    nonzero = p[p > 0]
    return float(-(nonzero * np.log(nonzero)).sum())


def prediction_confidence(probabilities) -> float:
    """1 - entropy / log(classes): 1 when one class has all the mass, 0 when the prediction is uniform."""
    return 1.0 - prediction_entropy(probabilities) / math.log(np.asarray(probabilities).size)


def is_hard(rule: dict, inference: dict) -> tuple[bool, str]:
    """Apply one filter rule to one frame's inference; returns (hard?, reason).

    Args:
        rule: ``{"filter": "cross_entropy", "threshold": 0.5}``, ``{"filter": "ibt", "box_threshold": 0.5,
            "img_threshold": 0.5}`` or ``{"filter": "csf", "low": 0.3, "high": 0.6}``.
        inference: ``{"probabilities": [...]}`` (classification) or ``{"scores": [...]}`` (detection).
    """
    kind = rule.get("filter")
    if kind == "cross_entropy":
        if "probabilities" not in inference:
            raise ValueError("cross_entropy needs the inference's probabilities")
        threshold = float(rule.get("threshold", 0.5))
        value = prediction_confidence(inference["probabilities"])
        return value < threshold, f"confidence {value:.3f} < {threshold:g}"
    if kind in ("ibt", "csf"):
        if "scores" not in inference:
            raise ValueError(f"{kind} needs the inference's box scores")
        scores = np.asarray(inference["scores"], dtype=np.float64).ravel()
        if scores.size == 0:
            return True, "no boxes"
        if kind == "ibt":
            box_threshold = float(rule.get("box_threshold", 0.5))
            img_threshold = float(rule.get("img_threshold", 0.5))
            share = float((scores <= box_threshold).mean())
            return share >= 1 - img_threshold, (f"{share:.0%} of boxes scoring <= {box_threshold:g} "
                                                f"(hard from {1 - img_threshold:.0%})")
        low, high = float(rule.get("low", 0.3)), float(rule.get("high", 0.6))
        inside = scores[(scores >= low) & (scores <= high)]
        return inside.size > 0, f"{inside.size} box score(s) in [{low:g}, {high:g}]"
    raise ValueError(f"unknown hard-example filter {kind!r} (one of {', '.join(FILTERS)})")


def average_hash(frame: np.ndarray, size: int = 8) -> int:
    """A 64-bit perceptual hash: grey, block-averaged to ``size``x``size``, one bit per block above the mean."""
    grey = frame.mean(axis=2) if frame.ndim == 3 else frame.astype(np.float64)
    h, w = grey.shape
    rows = np.array_split(np.arange(h), size)
    cols = np.array_split(np.arange(w), size)
    blocks = np.array([[grey[np.ix_(r, c)].mean() for c in cols] for r in rows])
    bits = (blocks > blocks.mean()).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


@dataclass
class UploadGate:
    """Bounds hard-example uploads (per minute and in total) and drops near-duplicates of recent uploads.

    Args:
        max_per_minute: uploads allowed in any 60 s window (default 6).
        max_total: uploads allowed for the gate's lifetime (default 500).
        min_distance: frames whose average hashes differ in fewer bits are duplicates (default 6 of 64).
        memory: how many recent hashes are remembered (default 256).
    """

    max_per_minute: int = 6
    max_total: int = 500
    min_distance: int = 6
    memory: int = 256
    clock: callable = time.monotonic
    counts: dict = field(default_factory=lambda: {"accepted": 0, "duplicate": 0, "rate_limited": 0, "budget": 0})

    def __post_init__(self):
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._times: deque[float] = deque()

    def admit(self, frame: np.ndarray) -> bool:
        """True when this frame should be uploaded (and remember it); False counts why not."""
        if self.counts["accepted"] >= self.max_total:
            self.counts["budget"] += 1
            return False
        now = self.clock()
        while self._times and now - self._times[0] >= 60.0:
            self._times.popleft()
        digest = average_hash(frame)
        if any(bin(digest ^ seen).count("1") < self.min_distance for seen in self._recent):
            self.counts["duplicate"] += 1
            return False
        if len(self._times) >= self.max_per_minute:
            self.counts["rate_limited"] += 1
            return False
        self._times.append(now)
        self._recent[digest] = None
        while len(self._recent) > self.memory:
            self._recent.popitem(last=False)
        self.counts["accepted"] += 1
        return True
