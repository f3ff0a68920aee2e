"""Display filters on a volume (MPR): SimpleITK 3-D filters with true spacing, progress and cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewer.core.filters import DisplayFilter, mean_filter, median_filter, volume_label, volume_radii
from viewer.core.jobs import Cancelled
from viewer.io import load_series
from viewer.io.volume_filter import PROGRESS_STEPS, filter_volume


@pytest.fixture(scope="module")
def ct_block(data_dir: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    vol = load_series(data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom")
    return vol.array[:, 180:300, 150:330], vol.spacing  # a block through the abdomen: (20, 120, 180)


def test_radii_follow_the_spacing() -> None:
    median = DisplayFilter("median", 1)
    assert volume_radii(median, (0.98, 0.98, 2.0)) == (0, 1, 1)  # thick slices: stays in the slice
    assert volume_radii(median, (0.8, 0.8, 0.8)) == (1, 1, 1)  # isotropic: a 3x3x3 cube
    assert volume_radii(DisplayFilter("mean", 2), (0.5, 1.0, 1.0)) == (1, 1, 2)  # 1 mm reach each way
    assert volume_label(median, (0.98, 0.98, 2.0)) == "filter: median 3x3x1 (3D)"
    assert volume_label(DisplayFilter("bilateral", 1.5), (1, 1, 1)).startswith("filter: curvature flow")


def test_thick_slice_median_and_mean_are_each_slices_own(ct_block) -> None:
    arr, spacing = ct_block
    for f, flat in ((DisplayFilter("median", 1), median_filter), (DisplayFilter("mean", 1), mean_filter)):
        out = filter_volume(arr, spacing, f)
        assert out.shape == arr.shape and out.dtype == np.float32
        np.testing.assert_allclose(out, flat(arr, 1), atol=1e-3)


def test_gaussian_reaches_the_neighbouring_slices_in_mm(ct_block) -> None:
    arr, spacing = ct_block
    f = DisplayFilter("gaussian", 1.0)
    thick = filter_volume(arr, spacing, f)
    thin = filter_volume(arr, (spacing[0], spacing[1], 0.5), f)  # the same voxels, slices 0.5 mm apart
    # with closer slices the 0.98 mm sigma spans about two slices each way: more smoothing along z
    dz = lambda a: float(np.abs(np.diff(a, axis=0)).mean())  # noqa: E731
    assert dz(thin) < dz(thick) < dz(arr.astype(np.float32))
    # in-plane smoothing is the same 1-pixel sigma as the 2-D filter (to the kernel's truncation)
    assert abs(float(np.abs(np.diff(thick, axis=2)).mean())
               - float(np.abs(np.diff(f.apply(arr), axis=2)).mean())) < 0.1 * float(np.abs(np.diff(thick, axis=2)).mean())


def test_progress_and_cancel(ct_block) -> None:
    arr, spacing = ct_block
    seen: list[tuple[int, int]] = []
    filter_volume(arr, spacing, DisplayFilter("bilateral", 1.5), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (PROGRESS_STEPS, PROGRESS_STEPS) and len(seen) > 2
    with pytest.raises(Cancelled):
        filter_volume(arr, spacing, DisplayFilter("median", 1), cancel=lambda: True)
    with pytest.raises(ValueError, match="grey volume"):
        filter_volume(arr[0], spacing, DisplayFilter("median", 1))
