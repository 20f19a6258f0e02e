import numpy as np
import pytest

from modelyard.core.errors import InvalidInput
from modelyard.data.image_features import embed, image_features


def test_features_of_gray_and_colour_images():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(5, 1, 32, 32), dtype=np.uint8)
    colour = rng.integers(0, 256, size=(5, 3, 32, 32), dtype=np.uint8)
    assert image_features(gray).shape == (5, 256 + 128)
    assert image_features(colour).shape == (5, 256 + 128 + 48)
    with pytest.raises(InvalidInput, match="32"):
        image_features(rng.integers(0, 256, size=(5, 1, 28, 28), dtype=np.uint8))


def test_gradient_histograms_tell_edge_orientations_apart_whatever_the_contrast():
    vertical = np.zeros((1, 1, 32, 32), dtype=np.uint8)
    vertical[..., :, 16:] = 200
    faint = (vertical // 4).astype(np.uint8)
    horizontal = vertical.transpose(0, 1, 3, 2).copy()
    hog = image_features(np.concatenate([vertical, faint, horizontal]))[:, 256:]
    assert np.allclose(hog[0], hog[1], atol=1e-3)  # cells are normalised: contrast does not count
    assert not np.allclose(hog[0], hog[2], atol=0.1)


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
