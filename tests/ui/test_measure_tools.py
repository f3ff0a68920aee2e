"""Measurements drawn, edited and deleted with the mouse and keys on a phantom of known geometry."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.state.phantoms import ramp_volume
from tests.ui.test_viewport_support import click, drag, widget_pos
from viewer.core import measure
from viewer.ui.viewport import SliceViewport


@pytest.fixture
def vp(qtbot):
    view = SliceViewport()
    qtbot.addWidget(view)
    view.resize(500, 500)
    view.show()
    qtbot.waitExposed(view)
    # Non-square pixels (0.7 mm wide, 0.9 mm high) so a wrong spacing shows up in every figure.
    view.set_volume(ramp_volume(shape=(5, 60, 80), spacing=(0.7, 0.9, 2.0)))
    view.state.set_slice(2)
    return view


def test_distance_on_a_phantom_is_right_in_mm(vp, qtbot):
    qtbot.keyClick(vp, Qt.Key.Key_D)
    assert vp.state.tool == "distance"
    with qtbot.waitSignal(vp.measurements_changed):
        drag(vp, widget_pos(vp, 10, 10), widget_pos(vp, 40, 50))
    (m,) = vp.measurements()
    want = np.hypot(30 * 0.9, 40 * 0.7)
    tol = 2 * vp.mm_per_pixel()  # the mouse lands on whole screen pixels
    assert m.kind == "distance" and m.value == pytest.approx(want, abs=tol)
    assert (m.plane, m.slice_index) == ("acquired", 2)
    assert m.id in vp.measure_layer.items
    vp.state.set_slice(3)  # drawn on slice 2 only
    assert m.id not in vp.measure_layer.items
    vp.state.set_slice(2)
    assert m.id in vp.measure_layer.items


def test_rect_and_ellipse_roi_stats_equal_numpy_on_the_same_mask(vp, qtbot):
    vol = vp.state.volume
    # A press on an existing ROI edits it, so the two shapes are drawn apart.
    for key, kind, mask_fn, (a, b) in (
        (Qt.Key.Key_Q, "rect", measure.rect_mask, ((3.2, 4.4), (22.6, 30.3))),
        (Qt.Key.Key_O, "ellipse", measure.ellipse_mask, ((25.3, 35.6), (55.1, 75.2))),
    ):
        qtbot.keyClick(vp, key)
        drag(vp, widget_pos(vp, *a), widget_pos(vp, *b))
        m = vp.measurements()[-1]
        assert m.kind == kind
        corners = [vp.state.lps_to_point(np.array(p))[1:] for p in m.points]
        mask = mask_fn((60, 80), *corners[0], *corners[1])
        vals = vol.array[2][mask].astype(float)
        assert (m.stats.mean, m.stats.sd, m.stats.min, m.stats.max, m.stats.pixels) == pytest.approx(
            (vals.mean(), vals.std(), vals.min(), vals.max(), mask.sum())
        )
        (r0, c0), (r1, c1) = corners
        assert (r0, c0, r1, c1) == pytest.approx((*a, *b), abs=0.3)
        box = abs(r1 - r0) * 0.9 * abs(c1 - c0) * 0.7
        assert m.value == pytest.approx(box if kind == "rect" else np.pi / 4 * box)
    rect, _ellipse = vp.measurements()
    assert "mean" in rect.summary() and "mm²" in rect.summary()


def test_angle_drag_then_click(vp, qtbot):
    qtbot.keyClick(vp, Qt.Key.Key_A)
    drag(vp, widget_pos(vp, 10, 40), widget_pos(vp, 40, 40))  # first arm: end (top) to vertex
    click(vp, widget_pos(vp, 40, 70))  # second arm goes right: a right angle in mm
    (m,) = vp.measurements()
    assert m.kind == "angle" and m.value == pytest.approx(90.0, abs=1.0)


def test_edit_by_dragging_a_handle_and_delete_with_the_key(vp, qtbot):
    qtbot.keyClick(vp, Qt.Key.Key_D)
    drag(vp, widget_pos(vp, 10, 10), widget_pos(vp, 10, 50))
    (m,) = vp.measurements()
    assert m.value == pytest.approx(40 * 0.7, abs=2 * vp.mm_per_pixel())
    qtbot.keyClick(vp, Qt.Key.Key_Escape)  # back to window/level; handles still editable
    drag(vp, widget_pos(vp, 10, 50), widget_pos(vp, 10, 70))
    qtbot.waitUntil(lambda: m.value == pytest.approx(60 * 0.7, abs=2 * vp.mm_per_pixel()))
    vp.measure_layer.select(m)
    with qtbot.waitSignal(vp.measurements_changed):
        qtbot.keyClick(vp, Qt.Key.Key_Delete)
    assert vp.measurements() == [] and vp.measure_layer.items == {}
