"""viewer.core.resize equals PyTorch's F.interpolate (align_corners=False), with and without torch here."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.core.crop import center_crop, center_crop_bounds, crop_box
from viewer.core.resize import resize

# 5x7 input with values in [0, 1]
_I, _J = np.mgrid[0:5, 0:7]
X = (((_I * 7 + _J * 13) % 17) / 16.0).astype(np.float32)

# Outputs of torch 2.13.0 (CPU) F.interpolate(X[None, None], size=..., mode=...), align_corners=False for
# bilinear, printed with numpy's shortest round-trip repr: the check that runs where torch is absent (CI).
TORCH = {
    ((3, 4), "bilinear"): [[0.3177083, 0.6770834, 0.23958333, 0.5104167],
                           [0.78125, 0.34375, 0.8359375, 0.53125],
                           [0.4479166, 0.4531251, 0.6354166, 0.41927087]],
    ((8, 11), "bilinear"): [
        [0.0, 0.36931816, 0.78977275, 0.6306818, 0.47159094, 0.3125, 0.15340912, 0.2840907, 0.80113643, 0.7386364,
         0.625],
        [0.19140625, 0.3494318, 0.55859375, 0.6953125, 0.6629971, 0.50390625, 0.34481537, 0.3487215, 0.56995744,
         0.46519887, 0.3515625],
        [0.46484375, 0.35120738, 0.2826704, 0.7574574, 0.87002844, 0.7109375, 0.5941052, 0.45916203, 0.300071,
         0.14098012, 0.02734375],
        [0.73828125, 0.6246449, 0.49573863, 0.5479404, 0.47940347, 0.3203125, 0.62606525, 0.7325995, 0.5735085,
         0.41441762, 0.30078125],
        [0.6796875, 0.5660511, 0.43714488, 0.4893466, 0.4208097, 0.26171875, 0.5674715, 0.67400575, 0.51491475,
         0.5369318, 0.57421875],
        [0.2890625, 0.17542613, 0.10688914, 0.5816761, 0.6942472, 0.53515625, 0.41832387, 0.28338075, 0.12428975,
         0.50852275, 0.84765625],
        [0.49609375, 0.38245738, 0.265625, 0.40234375, 0.58735794, 0.80859375, 0.6495029, 0.490412, 0.331321,
         0.42578122, 0.5234375],
        [0.6875, 0.5738637, 0.41477278, 0.2556818, 0.48295444, 1.0, 0.8409091, 0.68181825, 0.52272725, 0.36363637,
         0.25]],
    ((3, 4), "area"): [[0.359375, 0.6041667, 0.45833334, 0.4375],
                       [0.39583334, 0.49305555, 0.4652778, 0.38541666],
                       [0.34375, 0.5, 0.53125, 0.421875]],
    ((8, 11), "nearest"): [
        [0.0, 0.0, 0.8125, 0.8125, 0.5625, 0.3125, 0.3125, 0.0625, 0.875, 0.875, 0.625],
        [0.0, 0.0, 0.8125, 0.8125, 0.5625, 0.3125, 0.3125, 0.0625, 0.875, 0.875, 0.625],
        [0.4375, 0.4375, 0.1875, 0.1875, 1.0, 0.75, 0.75, 0.5, 0.25, 0.25, 0.0],
        [0.4375, 0.4375, 0.1875, 0.1875, 1.0, 0.75, 0.75, 0.5, 0.25, 0.25, 0.0],
        [0.875, 0.875, 0.625, 0.625, 0.375, 0.125, 0.125, 0.9375, 0.6875, 0.6875, 0.4375],
        [0.25, 0.25, 0.0, 0.0, 0.8125, 0.5625, 0.5625, 0.3125, 0.0625, 0.0625, 0.875],
        [0.25, 0.25, 0.0, 0.0, 0.8125, 0.5625, 0.5625, 0.3125, 0.0625, 0.0625, 0.875],
        [0.6875, 0.6875, 0.4375, 0.4375, 0.1875, 1.0, 1.0, 0.75, 0.5, 0.5, 0.25]],
}


@pytest.mark.parametrize("key", list(TORCH))
def test_matches_stored_torch_output(key: tuple[tuple[int, int], str]) -> None:
    size, mode = key
    got = resize(X, size, mode)
    assert got.dtype == np.float32 and got.shape == size
    np.testing.assert_allclose(got, np.array(TORCH[key], dtype=np.float32), rtol=0, atol=2e-7)


def test_bilinear_upscale_by_hand() -> None:
    # 2 -> 4 with aligned pixel centres: source coordinates -0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper
    # neighbour clamped), so the weights along each axis are 0, 0.25, 0.75, 1.
    x = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    want = np.array([[0.0, 0.25, 0.75, 1.0], [0.5, 0.75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2.0, 2.25, 2.75, 3.0]])
    np.testing.assert_array_equal(resize(x, (4, 4), "bilinear"), want)


def test_area_and_nearest_by_hand() -> None:
    x = np.arange(5, dtype=np.float32)[None, :] * np.ones((4, 1), np.float32)  # 4 rows of 0..4
    # 5 -> 3 columns: windows [0:2], [1:4], [3:5] (floor/ceil of d*5/3) overlap; 4 -> 2 rows average pairs
    np.testing.assert_allclose(resize(x, (2, 3), "area"), [[0.5, 2.0, 3.5]] * 2, atol=1e-6)
    # nearest reads floor(d * in / out): 5 -> 3 columns 0, 1, 3
    np.testing.assert_array_equal(resize(x, (4, 3), "nearest"), [[0.0, 1.0, 3.0]] * 4)


def test_batches_and_hu_values_keep_their_units() -> None:
    hu = np.stack([X * 1000 - 500, X * -300]).astype(np.int16)  # (2, 5, 7) int16 HU
    got = resize(hu, (3, 4), "bilinear")
    assert got.shape == (2, 3, 4)
    np.testing.assert_allclose(got[0], resize(hu[0], (3, 4), "bilinear"), atol=1e-4)
    np.testing.assert_array_equal(resize(hu, (5, 7), "bilinear"), hu.astype(np.float32))


def test_against_live_torch_on_random_shapes() -> None:
    torch = pytest.importorskip("torch")  # the stored output above covers machines without torch
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    for h, w, oh, ow in [(512, 512, 28, 28), (28, 28, 45, 45), (45, 45, 28, 28), (17, 31, 224, 100), (9, 9, 9, 3)]:
        x = rng.random((3, 1, h, w), dtype=np.float32)
        for mode in ("nearest", "bilinear", "area"):
            kw = {"align_corners": False} if mode == "bilinear" else {}
            want = F.interpolate(torch.from_numpy(x), size=(oh, ow), mode=mode, **kw).numpy()
            # PyTorch's kernel forms its weights with float32 centre arithmetic; agreement is to ~1e-5 of the
            # value range at 512 -> 28 (measured 3e-6), bit-exact for nearest.
            np.testing.assert_allclose(resize(x, (oh, ow), mode), want, rtol=0,
                                       atol=0 if mode == "nearest" else 2e-5, err_msg=f"{mode} {h}x{w}->{oh}x{ow}")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="interpolation"):
        resize(X, (2, 2), "bicubic")
    with pytest.raises(ValueError, match="size"):
        resize(X, (0, 2))
    with pytest.raises(ValueError, match="shape"):
        resize(np.zeros(5), (2, 2))


def test_crop_box_and_centre_crop() -> None:
    a = np.arange(2 * 6 * 8).reshape(2, 6, 8)
    np.testing.assert_array_equal(crop_box(a, (1, 2, 4, 7)), a[:, 1:4, 2:7])
    assert center_crop_bounds(6, 8, 0.5) == (2, 2, 5, 6)  # 3x4 kept, centred
    # Python's round (half to even), as torchvision's CenterCrop: 2 of 5 kept, top = round(1.5) = 2
    assert center_crop_bounds(5, 5, 0.5) == (2, 2, 4, 4)
    assert center_crop(a, [1.0, 0.5]).shape == (2, 6, 4)
    with pytest.raises(ValueError, match="outside"):
        crop_box(a, (0, 0, 7, 8))
    with pytest.raises(ValueError, match="empty"):
        crop_box(a, (3, 0, 3, 8))
    with pytest.raises(ValueError, match="fraction"):
        center_crop_bounds(6, 8, 0.0)
