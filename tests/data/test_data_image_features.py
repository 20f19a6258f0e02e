import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.image_features import embed, image_features


def test_features_of_gray_and_colour_images():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(5, 1, 32, 32), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)
    assert image_features(gray).shape == (5, 256 + 128 + 16 + 9)
    assert image_features(colour).shape == (5, 256 + 128 + 16 + 9 + 48)
    with pytest.raises(InvalidInput, match="32"):
        image_features(rng.integers(0, 256, size=(5, 1, 28, 28), dtype=np.uint8))


def test_gradient_histograms_tell_edge_orientations_apart_whatever_the_contrast():
    vertical = np.zeros((1, 1, 32, 32), dtype=np.uint8)
    vertical[..., :, 16:] = 200
    faint = (vertical // 4).astype(np.uint8)
    horizontal = vertical.transpose(0, 1, 3, 2).copy()
    hog = image_features(np.concatenate([vertical, faint, horizontal]))[:, 256:384]
    assert np.allclose(hog[0], hog[1], atol=1e-3)  # cells are normalised: contrast does not count
    assert not np.allclose(hog[0], hog[2], atol=0.1)


def test_the_layout_ignores_polarity_and_the_spectrum_ignores_rotation():
    square = np.full((1, 1, 32, 32), 40, dtype=np.uint8)
    square[..., 8:24, 8:24] = 220
    inverted = (255 - square).astype(np.uint8)
    first, second = image_features(np.concatenate([square, inverted]))
    assert np.allclose(first[:256], second[:256], atol=1e-3)  # light on dark = dark on light
    bar = np.full((1, 1, 32, 32), 40, dtype=np.uint8)
    bar[..., 12:20, 4:28] = 220  # lying down: its edges are mostly horizontal
    standing = np.ascontiguousarray(np.rot90(bar, axes=(2, 3)))
    lying, upright = image_features(np.concatenate([bar, standing]))
    histogram, spectrum = slice(256 + 128, 256 + 128 + 16), slice(256 + 128 + 16, None)
    assert not np.allclose(lying[histogram], upright[histogram], atol=0.05)  # the orientations moved by 90 degrees
    assert np.allclose(lying[spectrum], upright[spectrum], atol=0.03)  # their spectrum did not (up to binning)


def test_embedding_is_deterministic_and_keeps_the_leading_components():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(40, 10)) * np.arange(1, 11)
    first, second = embed(features, 4), embed(features, 4)
    assert first.shape == (40, 4)
    assert np.array_equal(first, second)
    variances = first.var(axis=0)
    assert list(variances) == sorted(variances, reverse=True)
    with pytest.raises(InvalidInput):
        embed(np.zeros((0, 3)))
