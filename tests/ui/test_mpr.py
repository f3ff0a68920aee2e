"""MPR: true proportions with anisotropic voxels, and the crosshair linking the three planes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from tests.state.phantoms import sphere_volume
from tests.ui.test_viewport_support import click, drag, load_real, wheel, widget_pos
from viewer.ui.mpr import MprView


@pytest.fixture
def mpr(qtbot):
    view = MprView()
    qtbot.addWidget(view)
    view.resize(1200, 420)
    view.show()
    qtbot.waitExposed(view)
    return view


def extents_mm(vp) -> tuple[float, float]:
    """(width, height) in mm of the bright object through the middle of the displayed slice."""
    img = vp.displayed_image()
    g = vp.state.geometry
    dx, dy = (g.col_mm, g.row_mm)
    bright = img > 127
    rows, cols = np.nonzero(bright)
    return (cols.max() - cols.min() + 1) * dx, (rows.max() - rows.min() + 1) * dy


def test_sphere_with_anisotropic_voxels_is_round_in_all_three_planes(mpr):
    # 0.7 x 0.7 mm pixels, 3 mm slices: a 40 mm ball must measure 40 mm both ways in every plane.
    vol = sphere_volume(radius_mm=20.0, spacing=(0.7, 0.7, 3.0))
    mpr.set_volume(vol)
    for plane, vp in mpr.viewports.items():
        w, h = extents_mm(vp)
        step = max(vp.state.geometry.col_mm, vp.state.geometry.row_mm)
        assert w == pytest.approx(40.0, abs=step + 0.01), plane
        assert h == pytest.approx(40.0, abs=step + 0.01), plane
        # On screen too: the drawn ball is as high as it is wide (pixel sizes honoured).
        rows, cols = np.nonzero(vp.displayed_image() > 127)
        top, bottom = widget_pos(vp, rows.min() - 0.5, cols.min()), widget_pos(vp, rows.max() + 0.5, cols.min())
        left, right = widget_pos(vp, rows.min(), cols.min() - 0.5), widget_pos(vp, rows.min(), cols.max() + 0.5)
        assert (bottom.y() - top.y()) / (right.x() - left.x()) == pytest.approx(h / w, rel=0.03), plane
    assert mpr.viewports["coronal"].overlay().bottom_left[1] == "0.70 x 3.00 mm"


def test_click_and_shift_drag_move_the_crosshair_in_all_planes(mpr, qtbot):
    vol = sphere_volume(radius_mm=20.0, spacing=(0.7, 0.7, 3.0))
    mpr.set_volume(vol)
    axial, coronal, sagittal = (mpr.viewports[p] for p in ("axial", "coronal", "sagittal"))
    with qtbot.waitSignal(mpr.crosshair_moved):
        click(axial, widget_pos(axial, 20, 70))  # row 20 = j, col 70 = i
    assert coronal.state.slice_index == 20 and sagittal.state.slice_index == 70
    i, j, k = vol.patient_to_voxel(mpr.image.crosshair)
    assert (i, j, k) == pytest.approx((70, 20, axial.state.slice_index), abs=0.6)
    # Shift+left drag in the coronal view moves the axial slice (coronal rows run head to feet).
    start = widget_pos(coronal, 5, 30)
    drag(coronal, start, widget_pos(coronal, 15, 40), mods=Qt.KeyboardModifier.ShiftModifier)
    n = vol.shape[0]
    assert axial.state.slice_index == n - 1 - 15
    assert sagittal.state.slice_index == 40
    # Scrolling a plane carries the crosshair with it.
    before = sagittal.state.slice_index
    wheel(axial, -1)
    assert axial.state.slice_index == n - 1 - 15 + 1
    assert sagittal.state.slice_index == before
    assert vol.patient_to_voxel(mpr.image.crosshair)[2] == pytest.approx(n - 1 - 15 + 1)


def test_window_is_shared_between_the_planes(mpr):
    mpr.set_volume(sphere_volume())
    ax = mpr.viewports["axial"]
    p = widget_pos(ax, 40, 40)
    drag(ax, p, p + QPointF(100, 0))
    widths = {vp.state.image.width for vp in mpr.viewports.values()}
    assert widths == {600.0}


def test_reformatted_coronal_of_real_ct_has_the_right_letters_and_proportions(mpr, data_dir, tmp_path):
    vol = load_real(data_dir / "ct" / "pancreas-ct-philips-134")
    mpr.set_volume(vol)
    co = mpr.viewports["coronal"]
    o = co.overlay()
    assert (o.left, o.right, o.top, o.bottom) == ("R", "L", "H", "F")
    sa = mpr.viewports["sagittal"].overlay()
    assert (sa.left, sa.right, sa.top, sa.bottom) == ("A", "P", "H", "F")
    g = co.state.geometry
    assert (g.col_mm, g.row_mm) == pytest.approx(vol.spacing[0:1] + vol.spacing[2:3], rel=1e-6)
    # Patient head at the top: the first coronal row is the most cranial axial slice.
    top_z = vol.voxel_to_patient(g.to_voxel(co.state.slice_index, 0, 0))[2]
    bottom_z = vol.voxel_to_patient(g.to_voxel(co.state.slice_index, g.shape[0] - 1, 0))[2]
    assert top_z > bottom_z
    assert mpr.grab().save(str(tmp_path / "mpr.png"))


def test_oblique_grid_is_resampled_in_patient_space_and_says_so(mpr):
    # A grid turned 20 degrees about the L axis, 1 x 1 x 2.5 mm voxels: every standard plane is resampled,
    # and the ball must still be a 30 mm disc with the right letters in all three.
    t = np.radians(20.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    vol = sphere_volume(radius_mm=15.0, spacing=(1.0, 1.0, 2.5), extent_mm=50.0, rotation=tilt)
    mpr.set_volume(vol)
    letters = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "H", "F"), "sagittal": ("A", "P", "H", "F")}
    for plane, vp in mpr.viewports.items():
        g = vp.state.geometry
        assert g.resampled and g.obliquity_deg == pytest.approx(20.0, abs=0.01), plane
        assert "resampled: grid 20° oblique" in vp.overlay().bottom_left
        o = vp.overlay()
        assert (o.left, o.right, o.top, o.bottom) == letters[plane]
        w, h = extents_mm(vp)
        assert (w, h) == pytest.approx((30.0, 30.0), abs=2.6), plane
    # The crosshair (the volume centre) is the ball's centre: the value there is inside the ball.
    ax = mpr.viewports["axial"]
    _, row, col = ax.state.lps_to_point(mpr.image.crosshair)
    assert ax.state.slice_array()[int(round(row)), int(round(col))] == 1000
