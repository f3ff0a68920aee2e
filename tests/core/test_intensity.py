"""Histogram matching (the histogram_match preprocessing op) on a real radiograph."""

from __future__ import annotations

import numpy as np
from pydicom.data import get_testdata_file

from viewer.core.intensity import image_quantiles, match_quantiles
from viewer.core.resize import resize
from viewer.io import load_series


def test_matched_image_has_the_reference_quantiles_whatever_its_display_processing() -> None:
    vol = load_series(get_testdata_file("RG1_UNCR.dcm"))
    x = vol.array[:, :1841, :1841].astype(np.float32)
    small = resize(x[:, None], (28, 28), "area")[:, 0] / 30000.0  # the file window is 0..30000
    ref = np.linspace(0.0, 1.0, 33) ** 1.5  # any increasing target
    out = match_quantiles(small, ref)
    assert np.allclose(image_quantiles(out, 33)[0], ref, atol=0.02)
    # invariant to an increasing grey-level mapping (another vendor's look-up table): exactly at the 33
    # knots, up to the linear interpolation between them elsewhere
    again = match_quantiles(np.sqrt(small), ref)
    assert np.abs(again - out).max() < 0.01
    plain = small - small.mean()
    assert np.abs(match_quantiles(3.0 * plain + 7.0, ref) - out).max() < 1e-5  # linear maps: exactly


def test_flat_histograms_and_constant_images() -> None:
    x = np.zeros((2, 10, 10), np.float32)
    x[0, :5] = 1.0  # half black, half white: tied quantiles
    out = match_quantiles(x, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert np.all(np.isfinite(out))
    assert out[0, 0, 0] > out[0, 9, 9]
    assert np.all(out[1] == 0.5)  # a constant image goes to the reference median
