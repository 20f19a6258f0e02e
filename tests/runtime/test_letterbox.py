"""Letterbox math: the image sits centred and undistorted, and boxes map to the canvas and back exactly."""

import numpy as np
import pytest

from modelyard.runtime.letterbox import PAD_VALUE, letterbox, letterbox_geometry


def test_a_wide_image_is_centred_vertically_and_boxes_round_trip():
    pixels = np.zeros((50, 200, 3), dtype=np.uint8)
    pixels[10:20, 40:80] = 255  # a white box at x 40..80, y 10..20
    canvas, params = letterbox(pixels, 128)
    assert canvas.shape == (128, 128, 3)
    assert params.scale_x == params.scale_y == pytest.approx(0.64) and params.resized == (128, 32)
    assert (params.pad_x, params.pad_y) == (0, 48)
    assert (canvas[:48] == PAD_VALUE).all() and (canvas[80:] == PAD_VALUE).all()
    box = np.array([[40.0, 10.0, 80.0, 20.0]])
    placed = params.to_input(box)
    np.testing.assert_allclose(placed, [[25.6, 54.4, 51.2, 60.8]])
    x1, y1, x2, y2 = np.round(placed[0]).astype(int)
    assert canvas[y1 + 1:y2 - 1, x1 + 1:x2 - 1].min() > 200  # the pixels went where the box went
    np.testing.assert_allclose(params.to_original(placed), box)


def test_a_tall_image_pads_left_and_right_and_odd_padding_goes_right():
    params = letterbox_geometry(height=64, width=31, size=64)
    assert params.scale_x == params.scale_y == 1.0
    assert params.resized == (31, 64) and (params.pad_x, params.pad_y) == (16, 0)
    canvas, _ = letterbox(np.full((64, 31, 3), 7, dtype=np.uint8), 64)
    assert (canvas[:, :16] == PAD_VALUE).all() and (canvas[:, 16:47] == 7).all() and (canvas[:, 47:] == PAD_VALUE).all()


def test_boxes_on_the_padding_map_back_clipped_to_the_image():
    params = letterbox_geometry(50, 200, 128)
    np.testing.assert_allclose(params.to_original(np.array([-5.0, 0.0, 140.0, 128.0])), [0.0, 0.0, 200.0, 50.0])


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive sizes"):
        letterbox_geometry(10, 0, 64)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        letterbox(np.zeros((10, 10), dtype=np.uint8), 64)
