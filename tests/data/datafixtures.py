"""Sample files for the dataset tests, built once per session from packages' bundled data (no downloads).

Not a conftest.py: a second ``conftest`` module would shadow ``tests/conftest.py`` for suites that import from it.
Test modules import these fixtures by name; the module-level cache keeps each built once per session even though
every importing module registers its own copy of the fixture.
"""

from __future__ import annotations

import numpy as np
import pytest

_CACHE: dict = {}


def _once(key, build):
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory):
    return _once("samples_dir", lambda: tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def iris_csv(samples_dir):
    from modelyard.data.samples import write_tabular_sample

    return _once("iris_csv", lambda: write_tabular_sample("iris", samples_dir / "iris.csv"))


@pytest.fixture(scope="session")
def mnist_small():
    """60 MNIST digits of classes 0, 1, 2 (20 each) as uint8 (N, 28, 28) and labels."""
    from modelyard.data.samples import load_mnist

    def build():
        x, y = load_mnist()["test"]
        picks = np.concatenate([np.flatnonzero(y == c)[:20] for c in (0, 1, 2)])
        return x[picks], y[picks]

    return _once("mnist_small", build)


@pytest.fixture(scope="session")
def mnist_folder(samples_dir, mnist_small):
    from modelyard.data.samples import write_image_folder

    return _once("mnist_folder", lambda: write_image_folder(*mnist_small, samples_dir / "mnist3",
                                                            classes=["zero", "one", "two"]))
