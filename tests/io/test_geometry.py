"""Slice ordering and affine from positions: tilt, gaps, uneven steps, single slices."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.io.geometry import stack_geometry

AXIAL = [1, 0, 0, 0, 1, 0]


def _pos(zs, shift_y=0.0):
    return [[-100.0, -50.0 + shift_y * i, z] for i, z in enumerate(zs)]


def test_sorts_by_position_not_input_order():
    zs = [6.0, 0.0, 4.0, 2.0, 8.0]
    geo = stack_geometry(_pos(zs), AXIAL, [0.5, 0.7])
    assert [zs[i] for i in geo.order] == sorted(zs)
    assert geo.affine[:3, 0] == pytest.approx([0.7, 0, 0])  # column spacing = PixelSpacing[1]
    assert geo.affine[:3, 1] == pytest.approx([0, 0.5, 0])
    assert geo.affine[:3, 2] == pytest.approx([0, 0, 2.0])
    assert geo.affine[:3, 3] == pytest.approx([-100, -50, 0])
    assert geo.warnings == []


def test_missing_slice_names_the_files():
    zs = [0.0, 2.0, 4.0, 8.0, 10.0]
    names = [f"f{i}.dcm" for i in range(5)]
    geo = stack_geometry(_pos(zs), AXIAL, [1, 1], names=names)
    assert len(geo.warnings) == 1
    assert "missing" in geo.warnings[0] and "f2.dcm -> f3.dcm" in geo.warnings[0]


def test_rounding_noise_is_not_uneven():
    zs = [0.0, 2.0004, 3.9998, 6.0003]  # scanner rounding, well within 1 % of the step
    assert stack_geometry(_pos(zs), AXIAL, [1, 1]).warnings == []


def test_tilted_gantry_gives_sheared_affine_and_warning():
    zs = [0.0, 2.0, 4.0, 6.0]
    geo = stack_geometry(_pos(zs, shift_y=0.5), AXIAL, [1, 1])
    assert geo.affine[:3, 2] == pytest.approx([0, 0.5, 2.0])  # the real step between slice centres
    assert any("tilt" in w for w in geo.warnings)
    angle = np.degrees(np.arctan(0.5 / 2.0))
    assert f"{angle:.2f}" in " ".join(geo.warnings)


def test_single_slice_uses_given_step():
    geo = stack_geometry([[1, 2, 3]], AXIAL, [0.8, 0.8], single_slice_step=5.0)
    assert geo.affine[:3, 2] == pytest.approx([0, 0, 5.0])
    assert geo.affine[:3, 3] == pytest.approx([1, 2, 3])


def test_oblique_normal_sorting():
    iop = [0, 1, 0, 0, 0, -1]  # sagittal: normal = row x col = -x
    pos = [[x, 0, 0] for x in (5.0, -5.0, 0.0)]
    geo = stack_geometry(pos, iop, [1, 1])
    assert [pos[i][0] for i in geo.order] == [5.0, 0.0, -5.0]  # ascending along the normal (-x)
    assert geo.affine[:3, 2] == pytest.approx([-5, 0, 0])
