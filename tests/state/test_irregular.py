"""Stacks that one affine cannot describe: the acquired plane shows the stored slices, reformats cut
an even resampled grid, and points map through each slice's own position."""

from __future__ import annotations

import numpy as np
import pytest

from tests.state.phantoms import affine
from viewer.core.volume import Volume
from viewer.state.view import ViewState


def _interleaved() -> Volume:
    """6 axial slices at z = 0, 1, 3, 4, 6, 7 mm (two interleaved sets); slice k holds the value z*10."""
    zs = np.array([0.0, 1.0, 3.0, 4.0, 6.0, 7.0])
    arr = np.stack([np.full((8, 10), int(z * 10), dtype=np.int16) for z in zs])
    a = affine((1.0, 1.0, 1.4))  # the mean step: (7 - 0) / 5
    pos = np.stack([np.zeros(6), np.zeros(6), zs], axis=1)
    return Volume(arr, a, modality="CT", slice_positions=pos)


def test_reformat_cuts_an_even_grid_and_points_keep_their_slice() -> None:
    vol = _interleaved()
    assert not vol.regular
    acquired = ViewState(plane="acquired")
    acquired.image.set_volume(vol)
    assert acquired.slice_count == 6
    acquired.set_slice(2)
    assert acquired.point_to_lps(0.0, 0.0)[2] == pytest.approx(3.0)  # not 2 * 1.4 = 2.8
    coronal = ViewState(acquired.image, plane="coronal")
    grid = coronal.plane_volume()
    assert grid is not vol and grid is not None and grid.regular
    assert grid.shape[0] == 8 and grid.spacing[2] == pytest.approx(1.0)  # z = 0..7 every 1 mm
    cut = coronal.slice_array()
    assert cut is not None
    column = sorted({int(v) for v in np.asarray(cut).ravel()})
    # Acquired slices keep their values; z = 2 and 5 mm are blended between their neighbours.
    assert column == [0, 10, 20, 30, 40, 50, 60, 70]
