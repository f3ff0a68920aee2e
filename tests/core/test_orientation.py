from __future__ import annotations

import itertools

import numpy as np
import pytest

from viewer.core.orientation import DisplayTransform, direction_letters, opposite_letters


@pytest.mark.parametrize(
    ("vector", "letters"),
    [
        ((1, 0, 0), "L"),
        ((-1, 0, 0), "R"),
        ((0, 1, 0), "P"),
        ((0, -1, 0), "A"),
        ((0, 0, 1), "H"),
        ((0, 0, -2.5), "F"),
        ((0.7, -0.7, 0.0), "LA"),
        ((-0.3, 0.9, 0.05), "PR"),  # 0.05 is below the oblique threshold
        ((0.6, 0.5, -0.62), "FLP"),
        ((0, 0, 0), ""),
    ],
)
def test_direction_letters(vector, letters):
    assert direction_letters(np.array(vector, dtype=float)) == letters


def test_opposite_letters():
    assert opposite_letters("LAH") == "RPF"


ALL = [DisplayTransform(bool(h), bool(v), r) for h, v, r in itertools.product((0, 1), (0, 1), range(4))]


@pytest.mark.parametrize("t", ALL, ids=str)
def test_transform_maps_agree_with_the_pixels(t):
    img = np.arange(12).reshape(3, 4)
    shown = t.apply(img)
    assert shown.shape == t.display_shape(img.shape)
    for r, c in np.ndindex(shown.shape):
        sr, sc = t.to_source(r, c, img.shape)
        assert img[int(sr), int(sc)] == shown[r, c]
        assert t.to_display(sr, sc, img.shape) == pytest.approx((r, c))
    # screen_axes in index space: rows run along (1, 0), columns along (0, 1).
    idx = np.stack(np.meshgrid(np.arange(3), np.arange(4), indexing="ij"), axis=-1)
    d = t.apply(idx)
    right, down = t.screen_axes(np.array([1.0, 0, 0]), np.array([0.0, 1, 0]))
    assert np.allclose(right[:2], d[0, 1] - d[0, 0])
    assert np.allclose(down[:2], d[1, 0] - d[0, 0])


@pytest.mark.parametrize("t", ALL, ids=str)
def test_screen_flip_mirrors_what_is_shown(t):
    img = np.arange(12).reshape(3, 4)
    assert np.array_equal(t.flipped_on_screen(True).apply(img), t.apply(img)[:, ::-1])
    assert np.array_equal(t.flipped_on_screen(False).apply(img), t.apply(img)[::-1])


def test_rotation_is_clockwise():
    img = np.array([[1, 2], [3, 4]])
    # Clockwise: the left column (1, 3) becomes the top row, read right to left.
    assert DisplayTransform(rotation=1).apply(img).tolist() == [[3, 1], [4, 2]]
    assert DisplayTransform().rotated(-1).rotation == 3
