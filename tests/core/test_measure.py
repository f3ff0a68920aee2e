from __future__ import annotations

import math

import numpy as np
import pytest

from viewer.core import measure


def test_distance_and_angle():
    assert measure.distance_mm(np.array([0, 0, 0]), np.array([3, 4, 12])) == pytest.approx(13.0)
    assert measure.angle_deg(np.array([1, 0, 0]), np.zeros(3), np.array([0, 5, 0])) == pytest.approx(90.0)
    assert measure.angle_deg(np.array([1, 0, 0]), np.zeros(3), np.array([1, 1, 0])) == pytest.approx(45.0)
    assert measure.angle_deg(np.array([1, 0, 0]), np.zeros(3), np.array([-2, 0, 0])) == pytest.approx(180.0)
    assert measure.angle_deg(np.zeros(3), np.zeros(3), np.array([1, 0, 0])) == 0.0


def test_rect_mask_is_inclusive_and_order_free():
    m = measure.rect_mask((10, 10), 6, 5, 2, 1)
    assert m.sum() == 5 * 5
    assert m[2:7, 1:6].all()


def test_ellipse_mask_area_approaches_pi_a_b():
    m = measure.ellipse_mask((400, 400), 50, 100, 350, 300)
    assert m.sum() == pytest.approx(math.pi * 150 * 100, rel=0.01)
    assert measure.ellipse_area_mm2(50, 100, 350, 300, 0.5, 2.0) == pytest.approx(math.pi * 150 * 100)


def test_roi_stats_equal_numpy_on_the_same_mask():
    rng = np.random.default_rng(1)
    img = rng.integers(-1000, 2000, size=(64, 80)).astype(np.int16)
    mask = measure.ellipse_mask(img.shape, 10.3, 12.7, 50.2, 70.9)
    s = measure.roi_stats(img, mask, 12.5)
    vals = img[mask].astype(np.float64)
    assert (s.mean, s.sd, s.min, s.max, s.pixels) == pytest.approx((vals.mean(), vals.std(), vals.min(), vals.max(), mask.sum()))
    assert s.area_mm2 == 12.5
    empty = measure.roi_stats(img, np.zeros_like(mask), 0.0)
    assert empty.pixels == 0 and math.isnan(empty.mean)
