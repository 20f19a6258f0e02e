"""Class names in answers: a classifier's prediction as ``{"index", "class", "score"}`` per row.

A version whose signature names its classes (``task.classes``: AutoML records them at training time; a user gives
them with ``models register --task``) is answered with names as well as indices, by the real-time services (the
JSON reply's ``predictions``) and by batch jobs (a ``class`` column), so no caller keeps its own index table.
"""

from __future__ import annotations

import numpy as np

from modelyard.registry.signature import Signature


def predicted_classes(signature: Signature,
                      outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(index per row, score per row or None)`` from the task's output, or None when the version names no
    classes or the output does not have one score per class (or one class index) per row."""
    names = signature.class_names
    if not names:
        return None
    output = signature.task.get("output") or signature.outputs[0].name
    values = outputs.get(output)
    if values is None:
        return None
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == len(names) and values.dtype.kind == "f":
        index = values.argmax(axis=1)
        return index, values[np.arange(len(values)), index]
    if values.ndim == 1 and values.dtype.kind in "iu":
        if values.size and (values.min() < 0 or values.max() >= len(names)):
            return None
        return values.astype(np.int64), None
    return None


def class_predictions(signature: Signature, outputs: dict[str, np.ndarray]) -> list[dict] | None:
    """One ``{"index": i, "class": name, "score": p}`` per row (``score`` left out when the output is indices),
    or None when the version names no classes."""
    found = predicted_classes(signature, outputs)
    if found is None:
        return None
    names = signature.class_names
    index, score = found
    rows = []
    for row, i in enumerate(index.tolist()):
        entry = {"index": int(i), "class": names[i]}
        if score is not None:
            value = float(score[row])
            entry["score"] = value if np.isfinite(value) else None  # JSON has no NaN
        rows.append(entry)
    return rows


def class_column(signature: Signature, outputs: dict[str, np.ndarray]) -> np.ndarray | None:
    """The predicted class name of every row (a batch output's ``class`` column), or None."""
    found = predicted_classes(signature, outputs)
    if found is None:
        return None
    return np.asarray(signature.class_names, dtype=object)[found[0]]
