"""Layouts, dropping series into viewports, and linked scrolling by patient position (mm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDropEvent

from tests.ui.conftest import open_and_wait
from viewer.ui.layouts import STACK_MIME, slice_position


@pytest.mark.parametrize("name, count", [("1x1", 1), ("1x2", 2), ("2x2", 4)])
def test_layouts_show_that_many_equal_viewports(qtbot, main_window, name: str, count: int) -> None:
    main_window.layout_actions[name].trigger()
    qtbot.wait(20)
    grid = main_window.grid
    assert grid.layout_name == name
    shown = [s for s in grid.slots if s.isVisible()]
    assert len(shown) == count == len(grid.visible_slots)
    widths = {s.width() for s in shown}
    heights = {s.height() for s in shown}
    assert max(widths) - min(widths) <= 2 and max(heights) - min(heights) <= 2
    assert main_window.layout_actions[name].isChecked()


def test_mpr_layout_replaces_the_grid(qtbot, main_window) -> None:
    main_window.set_layout("mpr")
    assert main_window.grid.layout_name == "mpr"
    assert main_window.grid.mpr is not None and main_window.grid.mpr.isVisible()
    assert not any(s.isVisible() for s in main_window.grid.slots)
    main_window.set_layout("2x2")
    assert sum(s.isVisible() for s in main_window.grid.slots) == 4


def test_drop_a_series_into_a_viewport(qtbot, main_window, ct_root: Path) -> None:
    open_and_wait(qtbot, main_window, [ct_root], load=False)
    main_window.set_layout("1x2")
    key = next(k for k, s in main_window.browser.stacks.items() if len(s.files) == 20)
    data = QMimeData()
    data.setData(STACK_MIME, key.encode())
    target = main_window.grid.slots[1]
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(main_window.series_loaded, timeout=60000) as blocker:
        target.dropEvent(event)
    assert blocker.args == [1]
    assert target.volume.shape[0] == 20 and main_window.grid.slots[0].volume is None
    assert main_window.grid.active == 1


def test_linked_scrolling_lands_on_the_same_position_in_mm(qtbot, main_window, pancreas_dir: Path,
                                                          io_services) -> None:
    files = sorted(str(p) for p in pancreas_dir.iterdir() if p.suffix == ".dcm")
    full = io_services.load_series(files)
    # Every third slice of the same acquisition: same frame of reference, 3x the step, different indices.
    sparse = io_services.load_series(files[1::3] if len(files) > 3 else files)
    assert sparse.shape[0] < full.shape[0]
    main_window.set_layout("1x2")
    a, b = main_window.grid.slots[0], main_window.grid.slots[1]
    a.show_volume(full)
    b.show_volume(sparse)
    step_b = sparse.spacing[2]
    for k in (10, 47, 100):
        a.view.set_slice(k)
        za = slice_position(full, k)[2]
        zb = slice_position(sparse, b.view.slice_index)[2]
        assert abs(za - zb) <= step_b / 2 + 1e-6
    # And back: scrolling the sparse series moves the full one to the same position.
    b.view.set_slice(5)
    zb = slice_position(sparse, 5)[2]
    za = slice_position(full, a.view.slice_index)[2]
    assert abs(za - zb) <= full.spacing[2] / 2 + 1e-6
    assert a.view.slice_index != 5  # by position, not by index
    # Unlinked: the other viewport stays where it is.
    main_window.act_link.setChecked(False)
    before = b.view.slice_index
    a.view.set_slice(0 if a.view.slice_index > 60 else 120)
    assert b.view.slice_index == before


def test_series_of_other_frames_of_reference_do_not_follow(qtbot, main_window, pancreas_dir: Path,
                                                          crc_dir: Path, io_services) -> None:
    main_window.set_layout("1x2")
    a, b = main_window.grid.slots[0], main_window.grid.slots[1]
    a.show_volume(io_services.load_series(str(pancreas_dir)))
    b.show_volume(io_services.load_series(str(crc_dir)))
    before = b.view.slice_index
    a.view.set_slice(3)
    assert b.view.slice_index == before
    assert np.isfinite(slice_position(a.volume, 3)).all()
