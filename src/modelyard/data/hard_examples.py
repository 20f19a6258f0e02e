"""Hard examples: items a labeler should look at first because the model is unsure or the labelers disagree.

The model filters follow Huawei HiLens / KubeEdge Sedna's hard-example mining filters, so a threshold tuned there
means the same here:

- classification, :func:`cross_entropy_hard`: confidence = 1 - (entropy of the class probabilities / log(classes));
  hard when the confidence is below ``threshold`` (Sedna's ``CrossEntropyFilter(threshold_cross_entropy=0.5)``).
- detection, boxes ``[xmin, ymin, xmax, ymax, score, label]``:
  - :func:`ibt_hard` (image-box threshold): hard when the share of boxes scoring at most ``box_threshold`` is at
    least ``1 - img_threshold`` (Sedna's ``IBTFilter(threshold_img=0.5, threshold_box=0.5)``);
  - :func:`csf_hard` (confidence-score filter): hard when any box scores within ``[low, high]``.
  An image with no boxes at all is hard for both (Sedna's filters answer True for an empty result: the model found
  nothing, which a labeler must confirm).
- labelers, :func:`agreement`: the share of votes for the most common label; hard below ``min_agreement`` (default
  0.7) once an item has at least two votes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from modelyard.core.errors import InvalidInput

DEFAULT_CONFIDENCE_THRESHOLD = 0.5
DEFAULT_BOX_THRESHOLD = 0.5
DEFAULT_IMG_THRESHOLD = 0.5
DEFAULT_CSF_RANGE = (0.3, 0.6)
DEFAULT_MIN_AGREEMENT = 0.7


def confidence(probabilities) -> np.ndarray:
    """``1 - H(p) / log(classes)`` per row: 1 when one class has all the mass, 0 when the model is uniform."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise InvalidInput(f"class probabilities must be (items, classes >= 2), got shape {probs.shape}")
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1 + 1e-6).any():
        raise InvalidInput("class probabilities must lie in [0, 1]")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(probs), 0.0)
    return 1.0 + terms.sum(axis=1) / math.log(probs.shape[1])


def cross_entropy_hard(probabilities, threshold: float = DEFAULT_CONFIDENCE_THRESHOLD) -> np.ndarray:
    """Boolean per row: the confidence (:func:`confidence`) is below ``threshold``."""
    if not 0 <= threshold <= 1:
        raise InvalidInput(f"threshold {threshold}: must be between 0 and 1")
    return confidence(probabilities) < threshold


def _scores(boxes: Sequence[Sequence[float]]) -> list[float]:
    scores = []
    for box in boxes:
        if len(box) < 5:
            raise InvalidInput(f"a detection box is [xmin, ymin, xmax, ymax, score, label], got {list(box)!r}")
        score = float(box[4])
        if not 0 <= score <= 1:
            raise InvalidInput(f"box score {score} is not in [0, 1]")
        scores.append(score)
    return scores


def ibt_hard(boxes: Sequence[Sequence[float]], box_threshold: float = DEFAULT_BOX_THRESHOLD,
             img_threshold: float = DEFAULT_IMG_THRESHOLD) -> bool:
    """Image-box threshold: the share of boxes scoring at most ``box_threshold`` is at least ``1 - img_threshold``."""
    scores = _scores(boxes)
    if not scores:
        return True
    low = sum(1 for score in scores if score <= box_threshold)
    return low / len(scores) >= 1 - img_threshold


def csf_hard(boxes: Sequence[Sequence[float]], low: float = DEFAULT_CSF_RANGE[0],
             high: float = DEFAULT_CSF_RANGE[1]) -> bool:
    """Confidence-score filter: some box scores within ``[low, high]``."""
    if not 0 <= low <= high <= 1:
        raise InvalidInput(f"score range [{low}, {high}]: need 0 <= low <= high <= 1")
    scores = _scores(boxes)
    return not scores or any(low <= score <= high for score in scores)


def agreement(votes: Sequence[str]) -> float:
    """Share of ``votes`` (one label per labeler) that agree with the most common label; 1.0 for one vote."""
    if not votes:
        raise InvalidInput("agreement needs at least one vote")
    return Counter(votes).most_common(1)[0][1] / len(votes)


def low_agreement(votes_by_item: Mapping[str, Sequence[str]],
                  min_agreement: float = DEFAULT_MIN_AGREEMENT) -> dict[str, float]:
    """Items with at least two votes whose :func:`agreement` is below ``min_agreement``, with their agreement."""
    if not 0 < min_agreement <= 1:
        raise InvalidInput(f"min_agreement {min_agreement}: must be in (0, 1]")
    return {item: round(share, 4) for item, votes in votes_by_item.items()
            if len(votes) >= 2 and (share := agreement(votes)) < min_agreement}
