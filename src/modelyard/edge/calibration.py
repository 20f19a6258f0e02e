"""INT8 calibration (and the gate's samples) from a registered dataset version: the one in the model's lineage (the
data Modelyard trained it on) or the one the caller names (``--calibration DATASET@VERSION``).

Real inputs matter twice: static INT8 fixes each activation's range from what the calibration samples produce, so
random noise gives ranges the model never sees; and the gate judges the quantised model on the same samples, so an
accuracy drop is measured where it counts. Samples are spread evenly over the version (deterministic) and prepared
as the model's input expects: a table's numeric feature columns in order; images resized (classification) or
letterboxed (detection, as Modelyard's detectors are trained) to the input's size and scaled to 0..1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput

DEFAULT_SAMPLES = 32


def calibration_ref(version, given: str | None) -> str:
    """The dataset version to calibrate ``version`` on: ``given``, else the one in its lineage; a clear error when
    there is neither."""
    ref = given or (version.lineage or {}).get("dataset")
    if not ref:
        raise InvalidInput(f"{version.ref} records no training dataset in its lineage: give a calibration dataset "
                           "(--calibration DATASET@VERSION, a version of the data it was trained on) so INT8 is "
                           "calibrated on real samples, or skip INT8 (--no-int8)")
    return str(ref)


def _spread(count: int, samples: int) -> np.ndarray:
    return np.unique(np.linspace(0, count - 1, num=min(samples, count)).round().astype(int))


def _fixed(shape: list, ref: str, name: str) -> list[int]:
    dims = list(shape[1:])
    if not all(isinstance(d, int) for d in dims):
        raise InvalidInput(f"cannot calibrate on {ref}: the model's input {name} has dynamic dims {shape[1:]} beyond "
                           "the batch")
    return dims


def dataset_feeds(workspace, ref: str, spec, out: Path, samples: int = DEFAULT_SAMPLES) -> dict:
    """Write up to ``samples`` inputs from dataset version ``ref`` to ``out`` (an ``.npz`` keyed by the model's
    input name); returns ``{"dataset", "kind", "samples"}``."""
    try:
        return _dataset_feeds(workspace, ref, spec, out, samples)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc.message}; or package without INT8 (--no-int8)") from None


def _dataset_feeds(workspace, ref: str, spec, out: Path, samples: int) -> dict:
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(workspace)
    dataset = store.get(ref)
    if len(spec.inputs) != 1:
        raise InvalidInput(f"cannot calibrate on {dataset.ref}: the model has {len(spec.inputs)} inputs and a "
                           "dataset feeds one")
    name, shape = spec.inputs[0].name, list(spec.inputs[0].shape)
    if dataset.kind == "tabular":
        x = _table(store, dataset, name, shape)
    elif dataset.kind in ("image-classification", "object-detection"):
        x = _images(store, dataset, name, shape, samples)
    else:
        raise InvalidInput(f"cannot calibrate on {dataset.ref}: a {dataset.kind} dataset; INT8 calibration reads "
                           "tabular, image-classification and object-detection datasets")
    x = x[_spread(len(x), samples)] if len(x) else x
    if not len(x):
        raise InvalidInput(f"cannot calibrate on {dataset.ref}: it holds no usable sample")
    np.savez(out, **{name: x[:, None]})  # one batch-1 sample each (``runtime.feeds``: rank + 1 = several)
    return {"dataset": dataset.ref, "kind": dataset.kind, "samples": int(len(x))}


def _table(store, dataset, name: str, shape: list) -> np.ndarray:
    frame, _ = store.load_table(dataset)
    label = dataset.schema.get("label")
    columns = [c for c in frame.columns if c != label and np.issubdtype(frame[c].dtype, np.number)]
    (width,) = _fixed(shape, dataset.ref, name) if len(shape) == 2 else (None,)
    if width != len(columns):
        raise InvalidInput(f"cannot calibrate on {dataset.ref}: the model's input {name} {shape} does not take its "
                           f"{len(columns)} numeric feature column(s) ({', '.join(map(str, columns[:8]))})")
    x = frame[columns].to_numpy(dtype=np.float32)
    return x[~np.isnan(x).any(axis=1)]


def _images(store, dataset, name: str, shape: list, samples: int) -> np.ndarray:
    dims = _fixed(shape, dataset.ref, name) if len(shape) == 4 else []
    if len(dims) != 3 or dims[0] not in (1, 3):
        raise InvalidInput(f"cannot calibrate on {dataset.ref}: the model's input {name} {shape} is not an image "
                           "batch (N, C, H, W)")
    entries = [e for e in store.manifest(dataset)["entries"] if "digest" in e and not e.get("error")]
    picked = [entries[i] for i in _spread(len(entries), samples)] if entries else []
    return _images_of(store, dataset, name, shape, picked)


def _images_of(store, dataset, name: str, shape: list, picked: list[dict]) -> np.ndarray:
    from modelyard.data import images

    channels, height, width = _fixed(shape, dataset.ref, name)
    out = np.empty((len(picked), channels, height, width), dtype=np.float32)
    for i, entry in enumerate(picked):
        data = store.blobs.read_bytes(entry["digest"])
        if dataset.kind == "object-detection" and channels == 3 and height == width:
            out[i] = _letterboxed(data, height)
        else:
            out[i] = images.decode_to_array(data, (height, width), channels)
    return out / 255.0


def _letterboxed(data: bytes, size: int) -> np.ndarray:
    import io

    from PIL import Image

    from modelyard.runtime.letterbox import letterbox

    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    placed, _ = letterbox(pixels, size)
    return placed.transpose(2, 0, 1)


def training_images(workspace, ref: str, spec, classes: list[str] | None, limit: int = 256):
    """Labelled images of image-classification dataset ``ref`` shaped for the model's input (as calibration
    prepares them) and their class indices in ``classes`` (the model's order; default the dataset's): the data a
    pruned classifier is fine-tuned on. ``None`` when ``ref`` is not an image-classification dataset."""
    from modelyard.data.datasets import DatasetStore

    store = DatasetStore(workspace)
    dataset = store.get(ref)
    shape = list(spec.inputs[0].shape) if len(spec.inputs) == 1 else []
    if dataset.kind != "image-classification" or len(shape) != 4 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    order = classes or list(dataset.schema["classes"])
    index = {name: i for i, name in enumerate(order)}
    entries = [e for e in store.manifest(dataset)["entries"] if "digest" in e and not e.get("error")
               and e.get("label") in index]
    picked = [entries[i] for i in _spread(len(entries), limit)] if entries else []
    if not picked:
        return None
    x = _images_of(store, dataset, spec.inputs[0].name, shape, picked)
    return x, np.array([index[e["label"]] for e in picked], dtype=np.int64)
