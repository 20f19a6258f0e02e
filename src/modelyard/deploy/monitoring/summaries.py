"""What a captured request becomes: one flat record per row, columns named by what they hold.

* ``f.<input>``: a table column (a ``[batch]`` or ``[batch, 1]`` input): its number or its category text;
* ``s.<input>.<stat>``: the summary of a larger tensor (``mean``, ``std``; for images ``width``, ``height``,
  ``brightness``, ``contrast``; for long text ``length``);
* ``e.<input>``: a 32-number embedding of an image or a long text, from a fixed random projection of the image
  downsampled to 8x8 per channel (or of hashed character trigrams): cheap, deterministic across replicas and
  restarts, and good enough for a two-sample test to see a change of content or exposure;
* ``r.<input>``: the raw values of a tensor no larger than the service's ``max_record_bytes`` per row;
* ``p.class``, ``p.score`` (a classifier's predicted class and its probability), ``p.value`` (a one-number output).

Only numpy here, no I/O: the capture thread calls it, and reports call it on reference data, so both sides of a
comparison are summarized by the same code.
"""

from __future__ import annotations

import zlib

import numpy as np

EMBEDDING_DIM = 32
TEXT_CATEGORY_CHARS = 64  # longer text is summarized and embedded, not counted as a category
_GRID = 8
_projections: dict[tuple[int, int], np.ndarray] = {}


def projection(in_dim: int, seed: int = 18) -> np.ndarray:
    """The fixed ``(in_dim, EMBEDDING_DIM)`` random projection (Johnson-Lindenstrauss), the same in every
    process."""
    key = (in_dim, seed)
    matrix = _projections.get(key)
    if matrix is None:
        rng = np.random.default_rng(seed * 1_000_003 + in_dim)
        matrix = (rng.standard_normal((in_dim, EMBEDDING_DIM)) / np.sqrt(EMBEDDING_DIM)).astype(np.float32)
        _projections[key] = matrix
    return matrix


def is_column(shape: tuple) -> bool:
    """A tensor one table column feeds: ``[batch]`` or ``[batch, 1]``."""
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def image_layout(values: np.ndarray) -> str | None:
    """``NCHW`` or ``NHWC`` for a 4-D batch of images with 1-4 channels, else None."""
    if values.ndim != 4:
        return None
    if values.shape[1] in (1, 3, 4) and values.shape[3] not in (1, 3, 4):
        return "NCHW"
    if values.shape[3] in (1, 3, 4):
        return "NHWC"
    return "NCHW" if values.shape[1] in (1, 3, 4) else None


def image_summary(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: width, height, brightness (mean), contrast (std) and the embedding of an 8x8 thumbnail."""
    layout = image_layout(values)
    images = values if layout == "NCHW" else np.moveaxis(values, 3, 1)
    images = images.astype(np.float32, copy=False)
    n, channels, height, width = images.shape
    rows = np.linspace(0, height - 1, _GRID * 2).astype(int)
    cols = np.linspace(0, width - 1, _GRID * 2).astype(int)
    sampled = images[:, :, rows][:, :, :, cols]  # (n, c, 16, 16) by nearest sampling
    thumb = sampled.reshape(n, channels, _GRID, 2, _GRID, 2).mean(axis=(3, 5)).reshape(n, -1)
    flat = images.reshape(n, -1)
    return {"width": np.full(n, width, np.float64), "height": np.full(n, height, np.float64),
            "brightness": flat.mean(axis=1).astype(np.float64), "contrast": flat.std(axis=1).astype(np.float64),
            "embedding": thumb @ projection(thumb.shape[1])}


def text_embedding(texts: list[str]) -> np.ndarray:
    """Hashed character trigrams (4096 buckets, counts normalized) projected to EMBEDDING_DIM numbers."""
    buckets = 4096
    out = np.zeros((len(texts), EMBEDDING_DIM), np.float32)
    matrix = projection(buckets, seed=19)
    for i, text in enumerate(texts):
        padded = f"  {text.lower()} "
        index = [zlib.crc32(padded[j:j + 3].encode("utf-8", "replace")) % buckets for j in range(len(padded) - 2)]
        if index:
            counts = np.bincount(index, minlength=buckets).astype(np.float32)
            out[i] = (counts / np.linalg.norm(counts)) @ matrix
    return out


def _text_values(values: np.ndarray, rows: int) -> list[str]:
    return ["" if v is None else v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            for v in values.reshape(rows, -1)[:, 0].tolist()]


def summarize_inputs(feeds: dict[str, np.ndarray], rows: int, max_record_bytes: int) -> tuple[dict, int]:
    """``(columns, summarized)``: the record columns of a request's inputs (each a list of ``rows`` values) and
    how many tensors were too large to keep raw."""
    columns: dict[str, list] = {}
    summarized = 0
    for name, values in feeds.items():
        values = np.asarray(values)
        if values.ndim == 0 or values.shape[0] != rows:
            continue  # not batched by rows: a constant input, nothing per row to compare
        if values.dtype.kind in "OUS":
            texts = _text_values(values, rows)
            if is_column(values.shape) and max((len(t) for t in texts), default=0) <= TEXT_CATEGORY_CHARS:
                columns[f"f.{name}"] = texts
            else:
                columns[f"s.{name}.length"] = [float(len(t)) for t in texts]
                columns[f"e.{name}"] = list(text_embedding(texts))
            continue
        if values.dtype.kind not in "fiub":
            continue
        if is_column(values.shape):
            columns[f"f.{name}"] = values.reshape(rows).astype(np.float64).tolist()
            continue
        if image_layout(values) is not None:
            for stat, column in image_summary(values).items():
                columns[f"e.{name}" if stat == "embedding" else f"s.{name}.{stat}"] = list(column) \
                    if stat == "embedding" else column.tolist()
        else:
            flat = values.reshape(rows, -1).astype(np.float32)
            columns[f"s.{name}.mean"] = flat.mean(axis=1).astype(np.float64).tolist()
            columns[f"s.{name}.std"] = flat.std(axis=1).astype(np.float64).tolist()
        per_row = values.nbytes // max(rows, 1)
        if per_row <= max_record_bytes:
            columns[f"r.{name}"] = list(values.reshape(rows, -1).astype(np.float32))
        else:
            summarized += 1
    return columns, summarized


def summarize_outputs(signature, outputs: dict[str, np.ndarray], rows: int) -> dict[str, list]:
    """``p.class``/``p.score`` for a classifier that names its classes, else ``p.value`` for an output with one
    number per row."""
    from modelyard.deploy.classes import predicted_classes

    found = predicted_classes(signature, outputs) if signature is not None else None
    if found is not None:
        index, score = found
        names = signature.class_names
        columns = {"p.class": [names[i] for i in index.tolist()]}
        if score is not None:
            columns["p.score"] = score.astype(np.float64).tolist()
        return columns
    for values in outputs.values():
        values = np.asarray(values)
        if values.ndim >= 1 and values.shape[0] == rows and values.size == rows and values.dtype.kind in "fiub":
            return {"p.value": values.reshape(rows).astype(np.float64).tolist()}
    return {}
