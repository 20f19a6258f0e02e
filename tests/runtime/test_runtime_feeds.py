"""Feeds: seeded random within ranges, .npz/.npy data, image folders with preprocessing."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.runtime.feeds import iter_feeds, load_feeds, random_feeds, read_image
from modelyard.runtime.spec import parse_spec

SPEC = parse_spec({
    "onnx": "m.onnx",
    "inputs": [
        {"name": "x", "shape": ["batch", 4], "range": [-2, 2]},
        {"name": "ids", "shape": ["batch", 3], "dtype": "int64", "range": [5, 8]},
    ],
    "dims": {"batch": 2},
})


def test_random_feeds_are_seeded_and_in_range():
    first = list(random_feeds(SPEC, 3, seed=1))
    again = list(random_feeds(SPEC, 3, seed=1))
    assert len(first) == 3
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
        assert a["x"].shape == (2, 4) and a["x"].dtype == np.float32
        assert a["x"].min() >= -2 and a["x"].max() <= 2
        assert a["ids"].dtype == np.int64 and a["ids"].min() >= 5 and a["ids"].max() < 8


def test_npz_and_npy_folder(tmp_path):
    x = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    ids = np.zeros((3, 2, 3), dtype=np.int64)
    np.savez(tmp_path / "d.npz", x=x, ids=ids)
    samples = list(load_feeds(tmp_path / "d.npz", SPEC))
    assert len(samples) == 3 and np.array_equal(samples[2]["x"], x[2])
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x.npy", x[0])
    np.save(folder / "ids.npy", ids[0])
    assert len(list(iter_feeds(SPEC, 8, data=folder))) == 1
    np.save(folder / "x.npy", np.zeros((2, 2, 2, 4), dtype=np.float32))
    with pytest.raises(InvalidInput, match="rank"):
        list(load_feeds(folder, SPEC))


def _png(path, pixels: np.ndarray) -> None:
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_image_folder_with_preprocessing(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    _png(tmp_path / "a.png", pixels)
    (tmp_path / "b.ppm").write_bytes(b"P6\n5 6\n255\n" + pixels.tobytes())
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), pixels)
    np.testing.assert_array_equal(read_image(tmp_path / "b.ppm"), pixels)
    spec = parse_spec({
        "onnx": "m.onnx",
        "inputs": [{"name": "image", "shape": [1, 3, 6, 5]}],
        "preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    })
    samples = list(load_feeds(tmp_path, spec))
    assert len(samples) == 2
    expected = ((pixels / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(samples[0]["image"], expected, atol=1e-5)
    assert samples[0]["image"].dtype == np.float32


def test_empty_data_folder_is_an_error(tmp_path):
    with pytest.raises(InvalidInput, match="no .npy, .npz or image files"):
        list(load_feeds(tmp_path, SPEC))
