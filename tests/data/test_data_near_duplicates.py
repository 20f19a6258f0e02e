"""Near-duplicate images: distinct low-texture digits are not flagged; re-encoded, resized and brightened copies are,
and ``dedupe near`` removes exactly what the preview lists."""

import io

import numpy as np
import pytest
from PIL import Image

from modelyard.data.datasets import DatasetStore
from modelyard.data.steps import apply_step, duplicate_plan


@pytest.fixture
def store(sqlite_workspace):
    return DatasetStore(sqlite_workspace)


@pytest.fixture(scope="module")
def distinct_digits():
    """300 distinct MNIST digits: 150 "1"s (the class a 64-bit dHash within 4 bits collapsed) and 150 others."""
    from modelyard.data.samples import load_mnist

    x, y = load_mnist()["test"]
    picks = np.concatenate([np.flatnonzero(y == 1)[:150], np.flatnonzero(y == 7)[:75], np.flatnonzero(y == 0)[:75]])
    return x[picks], y[picks]


def _write(path, array, fmt="PNG", **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **options)


def _variants(array):
    """Copies a user would call the same picture: re-encoded as JPEG, slightly resized, brightened."""
    resized = np.asarray(Image.fromarray(array).resize((34, 34), Image.Resampling.BICUBIC))
    brighter = np.clip(array.astype(np.float32) * 0.8 + 20, 0, 255).astype(np.uint8)
    return {"z-jpeg.jpg": (array, "JPEG", {"quality": 75}), "z-bigger.png": (resized, "PNG", {}),
            "z-brighter.png": (brighter, "PNG", {})}


@pytest.mark.slow
def test_distinct_digits_are_not_near_duplicates(store, tmp_path, distinct_digits):
    x, y = distinct_digits
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        _write(tmp_path / "digits" / str(label) / f"{index}.png", image)
    version = store.import_path(tmp_path / "digits", "digits")
    assert version.stats["near_duplicates"]["pairs"] == 0
    plan = duplicate_plan(store, version)
    assert plan["remove"] == [] and plan["near"] == []


@pytest.mark.slow
def test_true_near_duplicates_are_found_and_only_they_are_removed(store, tmp_path, distinct_digits):
    x, y = distinct_digits
    originals = list(range(0, 300, 10))  # 30 digits get three altered copies each
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        _write(tmp_path / "d" / str(label) / f"{index}.png", image)
        if index in originals:
            for suffix, (array, fmt, options) in _variants(image).items():
                # "7.png" sorts before "7.z-...": the original comes first in the manifest and is the one kept
                _write(tmp_path / "d" / str(label) / f"{index}.{suffix}", array, fmt, **options)
    version = store.import_path(tmp_path / "d", "d")
    copies = {f"{y[i]}/{i}.{s}" for i in originals for s in ("z-jpeg.jpg", "z-bigger.png", "z-brighter.png")}
    plan = duplicate_plan(store, version)
    assert set(plan["remove"]) == copies  # every copy found, no distinct digit listed
    near = version.stats["near_duplicates"]
    assert near["files"] == len(plan["near"]) == 90 and near["pairs"] == 180  # 4 pictures of one digit: 6 pairs
    assert all(p["correlation"] >= 0.95 for p in plan["near"])
    deduped = apply_step(store, version, {"op": "dedupe", "near": True})
    assert deduped.items == 300 and deduped.lineage["step"]["removed"] == 90
    kept = {e["path"] for e in store.manifest(deduped)["entries"]}
    assert not kept & copies


def test_preview_lists_exact_duplicates_without_near(store, tmp_path, distinct_digits):
    x, _ = distinct_digits
    buffer = io.BytesIO()
    Image.fromarray(x[0]).save(buffer, format="PNG")
    for name in ("a/0.png", "a/1.png", "b/2.png"):
        (tmp_path / "e" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "e" / name).write_bytes(buffer.getvalue())
    _write(tmp_path / "e" / "b" / "3.png", x[1])
    version = store.import_path(tmp_path / "e", "e")
    plan = duplicate_plan(store, version, near=False)
    assert plan["remove"] == ["a/1.png", "b/2.png"] and plan["near"] == []
    assert plan["exact"] == [{"keep": "a/0.png", "remove": ["a/1.png", "b/2.png"]}]
