import numpy as np

from viewer.core.windowing import apply_window, default_window, window_bounds, window_to_uint8


def test_dicom_linear_window_endpoints():
    # PS3.3 C.11.2.1.2.1: c=40, w=400 -> x <= -160 black (c - 0.5 - (w-1)/2 = -160), x >= 239 white
    low, high = window_bounds(40, 400)
    assert (low, high) == (-160.0, 239.0)
    out = window_to_uint8(np.array([-1000, -160, 239, 1000, 39.5]), 40, 400)
    assert out.tolist()[:4] == [0, 0, 255, 255]
    assert out[4] == 128  # the centre maps to mid grey


def test_invert_is_mirror():
    v = np.linspace(-200, 300, 50)
    diff = window_to_uint8(v, 40, 400, invert=True).astype(int) - (255 - window_to_uint8(v, 40, 400).astype(int))
    assert np.abs(diff).max() <= 1  # rounding of the half-grey level may differ by one


def test_apply_window_range_and_monotone():
    v = np.arange(-500, 500, dtype=np.int16)
    w = apply_window(v, 0, 200)
    assert w.dtype == np.float32 and w.min() == 0 and w.max() == 1
    assert np.all(np.diff(w) >= 0)


def test_default_window_ct_and_percentiles():
    assert default_window(np.zeros(3), "CT") == (40.0, 400.0)
    c, w = default_window(np.arange(1000), "MR")
    assert 495 < c < 505 and 980 < w < 1000
