"""Display filters on a real CT slice, against SimpleITK's own filters where they are the same filter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from viewer.core import filters
from viewer.io import load_series


@pytest.fixture(scope="module")
def ct_slice(data_dir: Path) -> np.ndarray:
    vol = load_series(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom")
    return np.asarray(vol.array[10], dtype=np.float32)


def _sitk(f: sitk.ImageFilter, x: np.ndarray) -> np.ndarray:
    return sitk.GetArrayFromImage(f.Execute(sitk.GetImageFromArray(x.astype(np.float32))))


def test_mean_and_median_equal_simpleitk(ct_slice: np.ndarray) -> None:
    for r in (1, 2):
        box = sitk.MeanImageFilter()
        box.SetRadius(r)
        assert np.allclose(filters.mean_filter(ct_slice, r), _sitk(box, ct_slice), atol=1e-3)
        med = sitk.MedianImageFilter()
        med.SetRadius(r)
        assert np.array_equal(filters.median_filter(ct_slice, r), _sitk(med, ct_slice))


def test_gaussian_matches_simpleitk_discrete_gaussian_inside(ct_slice: np.ndarray) -> None:
    g = sitk.DiscreteGaussianImageFilter()
    g.SetVariance(1.0)
    g.SetUseImageSpacing(False)
    g.SetMaximumError(1e-4)
    ours, theirs = filters.gaussian_filter(ct_slice, 1.0), _sitk(g, ct_slice)
    # ITK samples the kernel from the discrete Gaussian (Bessel functions), we sample the continuous one:
    # a few HU apart at sharp bone edges, equal smoothing elsewhere
    inner = (slice(8, -8), slice(8, -8))
    assert np.median(np.abs(ours[inner] - theirs[inner])) < 0.5
    assert np.abs(ours - ct_slice).mean() == pytest.approx(np.abs(theirs - ct_slice).mean(), rel=0.1)


def test_filters_handle_volumes_slice_by_slice(ct_slice: np.ndarray) -> None:
    vol = np.stack([ct_slice, ct_slice[::-1]])
    for f in filters.PRESETS:
        out = f.apply(vol)
        assert out.shape == vol.shape and out.dtype == np.float32
        assert np.allclose(out[1], f.apply(ct_slice[::-1]), atol=1e-3)
        assert f.label.startswith("filter: ")


def test_bilateral_keeps_edges_sharper_than_gaussian_at_equal_noise(ct_slice: np.ndarray) -> None:
    # noise: a flat soft-tissue patch (the SD of HU after filtering); edge: the skin-air boundary step
    bil = filters.bilateral_filter(ct_slice, 1.5, 40.0)
    grad = np.abs(np.diff(ct_slice, axis=1))
    edge = grad > 500  # air/skin or bone edges
    flat = (filters.gaussian_filter(np.abs(ct_slice - 40.0), 3.0) < 60) & ~np.pad(edge, ((0, 0), (0, 1)))
    sd_bil = bil[flat].std()
    lo, hi = 0.1, 3.0
    for _ in range(25):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filters.gaussian_filter(ct_slice, mid)[flat].std() > sd_bil else (lo, mid)
    gauss = filters.gaussian_filter(ct_slice, (lo + hi) / 2)
    assert np.abs(np.diff(bil, axis=1))[edge].mean() > np.abs(np.diff(gauss, axis=1))[edge].mean()
