from __future__ import annotations

import numpy as np
import pytest

from tests.state.phantoms import affine, ramp_volume
from viewer.core.orientation import direction_letters
from viewer.core.reslice import plane_geometry


def test_axial_volume_planes_are_views_in_radiological_orientation():
    vol = ramp_volume(shape=(10, 12, 8), spacing=(0.5, 0.6, 3.0))
    a = vol.array
    ax = plane_geometry(vol.shape, vol.affine, "axial")
    assert (ax.slice_axis, ax.count, ax.shape) == (2, 10, (12, 8))
    assert np.array_equal(ax.extract(a, 4), a[4])
    co = plane_geometry(vol.shape, vol.affine, "coronal")
    # Slices run along j (P); rows go to the feet, i.e. against +k (H).
    assert (co.slice_axis, co.count, co.shape) == (1, 12, (10, 8))
    assert (co.row_mm, co.col_mm, co.slice_mm) == pytest.approx((3.0, 0.5, 0.6))
    assert np.array_equal(co.extract(a, 5), a[::-1, 5, :])
    sa = plane_geometry(vol.shape, vol.affine, "sagittal")
    assert (sa.slice_axis, sa.shape) == (0, (10, 12))
    assert np.array_equal(sa.extract(a, 3), a[::-1, :, 3])
    for g in (ax, co, sa):
        assert np.shares_memory(g.extract(a, 1), a)  # a view, not a copy
        assert g.obliquity_deg == pytest.approx(0.0)
    assert (direction_letters(co.col_dir), direction_letters(co.row_dir)) == ("L", "F")
    assert (direction_letters(sa.col_dir), direction_letters(sa.row_dir)) == ("P", "F")


def test_voxel_round_trip():
    vol = ramp_volume(shape=(10, 12, 8))
    for plane in ("acquired", "axial", "coronal", "sagittal"):
        g = plane_geometry(vol.shape, vol.affine, plane)
        ijk = g.to_voxel(3, 2.5, 4.25)
        assert g.from_voxel(ijk) == pytest.approx((3, 2.5, 4.25))
        # The voxel at (row, col) of slice 3 holds the value the extracted slice shows there.
        i, j, k = (int(v) for v in g.to_voxel(3, 2, 4))
        assert vol.array[k, j, i] == g.extract(vol.array, 3)[2, 4]


def test_sagittal_acquisition_gives_a_true_axial_reformat():
    # Siemens-style sagittal: columns run to P, rows to F, slices to L.
    rot = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float)
    shape = (6, 20, 16)
    arr = np.arange(np.prod(shape), dtype=np.int16).reshape(shape)
    from viewer.core.volume import Volume

    vol = Volume(arr, affine((1.0, 1.2, 4.0), rotation=rot))
    acq = plane_geometry(vol.shape, vol.affine, "acquired")
    assert (direction_letters(acq.col_dir), direction_letters(acq.row_dir)) == ("P", "F")
    ax = plane_geometry(vol.shape, vol.affine, "axial")
    assert ax.slice_axis == 1  # the row axis (F) walks through axial planes
    assert (direction_letters(ax.col_dir), direction_letters(ax.row_dir)) == ("L", "P")
    assert (ax.col_mm, ax.row_mm) == pytest.approx((4.0, 1.0))
    assert ax.shape == (16, 6)


def test_oblique_grid_reports_its_angle():
    t = np.radians(20.0)
    rot = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    g = plane_geometry((10, 10, 10), affine((1, 1, 1), rotation=rot), "axial")
    assert g.obliquity_deg == pytest.approx(20.0, abs=1e-6)


def test_unknown_plane_and_out_of_range_slice_are_clear():
    vol = ramp_volume(shape=(4, 5, 6))
    with pytest.raises(ValueError, match="unknown plane 'oblique'"):
        plane_geometry(vol.shape, vol.affine, "oblique")
    g = plane_geometry(vol.shape, vol.affine, "axial")
    with pytest.raises(IndexError, match="slice 4 out of range 0..3"):
        g.extract(vol.array, 4)


def test_repair_affine_makes_zero_spacing_drawable_and_says_so():
    from viewer.core.reslice import repair_affine

    good = affine((0.5, 0.6, 2.0))
    assert repair_affine(good) == (pytest.approx(good), None)
    bad = np.diag([0.0, 0.0, 1.0, 1.0])  # PixelSpacing "0\0", as in pydicom-data's RG1_J2KI.dcm
    fixed, warning = repair_affine(bad)
    assert np.linalg.det(fixed[:3, :3]) != 0
    assert np.linalg.norm(fixed[:3, :3], axis=0) == pytest.approx([1.0, 1.0, 1.0])
    assert "column spacing" in warning and "row spacing" in warning


def test_trilinear_sampling_is_exact_on_a_linear_field_and_fills_outside():
    from viewer.core.reslice import sample

    k, j, i = np.meshgrid(np.arange(5), np.arange(6), np.arange(7), indexing="ij")
    field = (2 * i + 3 * j + 5 * k).astype(np.float32) + 10
    rng = np.random.default_rng(3)
    pi, pj, pk = rng.uniform(0, 6, 200), rng.uniform(0, 5, 200), rng.uniform(0, 4, 200)
    got = sample(field, pi.astype(np.float32), pj.astype(np.float32), pk.astype(np.float32))
    assert got == pytest.approx(2 * pi + 3 * pj + 5 * pk + 10, abs=1e-3)
    same_f_order = sample(np.asfortranarray(field), pi, pj, pk)
    assert same_f_order == pytest.approx(got, abs=1e-3)
    outside = sample(field, np.array([-2.0, 3.0]), np.array([1.0, 9.0]), np.array([1.0, 1.0]))
    assert outside.tolist() == [10.0, 10.0]  # the volume minimum
    ints = sample(field.astype(np.int16), np.array([0.5]), np.array([0.0]), np.array([0.0]))
    assert ints.dtype == np.int16 and ints[0] == 11


def test_tilted_gantry_keeps_axial_on_the_grid_and_resamples_coronal():
    # Gantry tilt: the slice column is sheared towards P; rows and columns stay axial.
    aff = affine((0.7, 0.7, 3.0))
    aff[1, 2] = 3.0 * np.tan(np.radians(12.0))
    ax = plane_geometry((30, 40, 40), aff, "axial")
    co = plane_geometry((30, 40, 40), aff, "coronal")
    assert not ax.resampled
    assert co.resampled and co.obliquity_deg == pytest.approx(12.0, abs=0.01)
    ijk = co.to_voxel(5, 7.5, 3.25)
    assert co.from_voxel(ijk) == pytest.approx((5, 7.5, 3.25))
