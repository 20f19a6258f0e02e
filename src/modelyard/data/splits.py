"""The seeded train/validation split every dataset version fixes at import (ExeML's default is 0.8/0.2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRAIN, VALIDATION = "t", "v"


def stratified_split(labels: Sequence | None, count: int, validation_fraction: float = 0.2,
                     seed: int = 0) -> np.ndarray:
    """Assign each of ``count`` items to train (``"t"``) or validation (``"v"``).

    With ``labels`` the split is stratified: every class with at least two items sends
    ``round(n * validation_fraction)`` of them (at least one) to validation, so each class is seen on both sides;
    a class of one item stays in train. Without labels (regression) the split is a seeded random permutation.

    Args:
        labels: one label per item, or None for an unstratified split.
        count: number of items.
        validation_fraction: share of items in validation, in (0, 1). Default 0.2.
        seed: the random seed; the same inputs always give the same split.

    Returns:
        An array of ``count`` one-character strings, ``"t"`` or ``"v"``.
    """
    rng = np.random.default_rng(seed)
    out = np.full(count, TRAIN, dtype="<U1")
    if count < 2 or validation_fraction <= 0:
        return out
    if labels is None:
        take = min(count - 1, max(1, int(round(count * validation_fraction))))
        out[rng.permutation(count)[:take]] = VALIDATION
        return out
    keys = np.asarray([str(label) for label in labels])
    for value in sorted(set(keys.tolist())):
        members = np.flatnonzero(keys == value)
        if len(members) < 2:
            continue
        take = min(len(members) - 1, max(1, int(round(len(members) * validation_fraction))))
        out[rng.permutation(members)[:take]] = VALIDATION
    return out


def split_counts(assignment: str | Sequence[str]) -> dict[str, int]:
    """``{"train": n, "validation": m}`` of an assignment string or array."""
    values = list(assignment)
    return {"train": sum(1 for v in values if v == TRAIN), "validation": sum(1 for v in values if v == VALIDATION)}
