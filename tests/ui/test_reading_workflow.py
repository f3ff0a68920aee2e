"""The reading workflow as a radiologist relies on it, on real series, through the real window.

Each test failed before the application model (viewer.state.workspace) took over: the full volume reset
the preview's window and zoom, a series loading into another viewport dragged the reader's viewport along,
the readout froze while scrolling, MPR opened at the middle of the volume with its own window and was never
freed, the active viewport was hard to see and docks kept the keyboard.
"""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import numpy as np
import pydicom
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from tests.ui.conftest import open_and_wait
from viewer.state.measurements import Measurement
from viewer.ui.layouts import ACTIVE_COLOUR, IDLE_COLOUR, slice_position


def _load(qtbot, window, key: str, idx: int) -> None:
    with qtbot.waitSignal(window.series_loaded, timeout=60000, check_params_cb=lambda i: i == idx):
        window.load_stack(key, idx)


def test_full_volume_keeps_the_window_and_zoom_set_on_the_preview(qtbot, main_window, pancreas_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [pancreas_dir], load=False)
    key = next(iter(main_window.browser.stacks))
    slot = main_window.grid.slots[0]

    def on_preview(idx: int) -> None:  # runs before the full volume can be delivered (queued after it)
        assert slot.volume is None and slot.preview is not None
        slot.view.set_window(-600.0, 1500.0)  # the reader switches to a lung window...
        slot.view.state.set_zoom(2.0)  # ...and zooms in while the rest loads
        on_preview.position = slice_position(slot.preview, 0)  # type: ignore[attr-defined]

    main_window.first_image_shown.connect(on_preview)
    _load(qtbot, main_window, key, 0)
    assert slot.volume is not None and slot.volume.shape[0] == 134
    assert (slot.view.center, slot.view.width_hu) == (-600.0, 1500.0)
    assert slot.view.state.zoom == 2.0
    here = slice_position(slot.volume, slot.view.slice_index)
    assert np.allclose(here, on_preview.position, atol=1e-3)  # type: ignore[attr-defined]
    assert slot.view.overlay().message == ""


def test_loading_into_another_viewport_does_not_move_this_one(qtbot, main_window, pancreas_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [pancreas_dir], load=False)
    key = next(iter(main_window.browser.stacks))
    main_window.set_layout("1x2")
    _load(qtbot, main_window, key, 0)
    a, b = main_window.grid.slots[0], main_window.grid.slots[1]
    a.view.set_slice(20)
    main_window.grid.set_active(0)
    _load(qtbot, main_window, key, 1)  # the same frame of reference: linked
    assert a.view.slice_index == 20
    # The newcomer joins the reader's position instead.
    assert np.allclose(slice_position(b.volume, b.view.slice_index), slice_position(a.volume, 20), atol=1e-3)
    # Linked scrolling still works both ways afterwards.
    b.view.set_slice(60)
    assert a.view.slice_index == 60


def _colour_at(widget, x: int, y: int) -> str:
    return QColor(widget.grab().toImage().pixel(x, y)).name()


def test_active_viewport_is_outlined_and_keeps_the_keyboard(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    key = next(iter(main_window.browser.stacks))
    main_window.set_layout("2x2")
    _load(qtbot, main_window, key, 2)
    grid = main_window.grid
    third = grid.slots[2]
    qtbot.mouseClick(grid.slots[0].view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(30, 30))
    assert grid.active == 0
    qtbot.mouseClick(third.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(30, 30))
    assert grid.active == 2 and third.active and not grid.slots[0].active
    assert _colour_at(third, 0, third.height() // 2) == ACTIVE_COLOUR
    assert _colour_at(grid.slots[0], 0, grid.slots[0].height() // 2) == QColor(IDLE_COLOUR).name()
    # The reader uses a dock (the study tree), then presses a key: it acts on the active viewport.
    tree = main_window.browser.tree
    item = next(iter(main_window.browser.items.values()))
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=tree.visualItemRect(item).center())
    qtbot.waitUntil(lambda: QApplication.focusWidget() is third.view, timeout=2000)
    before = third.view.slice_index
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Down)
    assert third.view.slice_index == before + 1


def _readout(view) -> str:
    return view.overlay().bottom_left[0]


def test_readout_follows_scrolling_cine_and_window_under_a_still_mouse(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.slots[0].view
    vol = view.volume
    qtbot.mouseMove(view.viewport(), QPoint(view.viewport().width() // 2 + 37, view.viewport().height() // 2 + 11))
    qtbot.waitUntil(lambda: view._cursor is not None, timeout=2000)
    row, col = view._cursor.row, view._cursor.col

    def expected(k: int) -> str:
        return f"({col}, {row})  {int(vol.array[k, row, col])} HU"

    assert _readout(view) == expected(view.slice_index)
    z_before = view._cursor.lps[2]
    for step in range(1, 4):  # scrolling with the mouse still
        view.run_action("slice:+1")
        assert _readout(view) == expected(view.slice_index)
    assert view._cursor.lps[2] != z_before  # the patient position moved with the slice
    main_window.act_cine.trigger()  # cine
    start = view.slice_index
    qtbot.waitUntil(lambda: view.slice_index != start, timeout=5000)
    main_window.act_cine.trigger()
    assert _readout(view) == expected(view.slice_index)
    view.set_window(500.0, 2000.0)  # a window change redraws the readout too (and keeps it right)
    assert _readout(view) == expected(view.slice_index)


def test_corner_text_shows_thickness_spacing_and_the_files_instance_number(qtbot, main_window, pancreas_dir: Path,
                                                                           io_services) -> None:
    files = sorted(str(p) for p in pancreas_dir.iterdir() if p.suffix == ".dcm")
    sparse = io_services.load_series(files[::4])  # every fourth file: image numbers are not instance numbers
    slot = main_window.grid.slots[0]
    slot.show_volume(sparse)
    view = slot.view
    view.set_slice(5)
    lines = view.overlay().bottom_left
    ds = pydicom.dcmread(sparse.info.slices[5].file, stop_before_pixels=True)
    assert f"Im 6/{sparse.shape[0]} (Inst {int(ds.InstanceNumber)})" in lines[0]
    step = sparse.spacing[2]
    assert f"Thk {float(ds.SliceThickness):.3g} mm  Sp {step:.3g} mm" in lines


def test_mpr_opens_where_the_reader_is_shares_window_and_measurements_and_is_freed(qtbot, main_window,
                                                                                   crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    slot = main_window.grid.slots[0]
    view = slot.view
    view.set_slice(30)
    view.set_window(-600.0, 1500.0)
    p0, p1 = view.state.point_to_lps(200, 200), view.state.point_to_lps(200, 300)
    m = view.state.image.add_measurement(Measurement("distance", [tuple(p0), tuple(p1)], plane="acquired", slice_index=30))
    subscribers = len(slot.model.image._subscribers)
    main_window.set_layout("mpr")
    mpr = main_window.grid.mpr
    axial = mpr.viewports["axial"]
    assert (axial.center, axial.width_hu) == (-600.0, 1500.0)
    z30 = slice_position(slot.volume, 30)[2]
    assert abs(axial.state.slice_position_mm() - z30) <= slot.volume.spacing[2] / 2 + 1e-6
    assert m in axial.measurements()
    assert m.id in axial.measure_layer.items  # drawn on the axial plane, not only listed
    # The reader moves in MPR; back in 1x1 the viewport is at that position, the measurement still there.
    axial.state.set_slice(axial.state.slice_index + 10)
    main_window.set_layout("1x1")
    assert m in view.measurements() and abs(slice_position(slot.volume, view.slice_index)[2] - z30) > 5
    del mpr, axial
    # 50 MPR open/close cycles: nothing accumulates (views, their plane states, subscriptions).
    from viewer.ui.mpr import MprView

    def live_mprs() -> int:
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)  # deleteLater
        gc.collect()
        return sum(isinstance(o, MprView) for o in gc.get_objects())

    baseline = live_mprs()
    for _ in range(50):
        main_window.set_layout("mpr")
        main_window.set_layout("1x1")
    assert live_mprs() == 0 and baseline <= 1  # the first one may wait for its deferred delete
    assert len(slot.model.image._subscribers) == subscribers


def test_edge_slice_window_does_not_open_the_series_in_the_window(qtbot, main_window, data_dir: Path,
                                                                  tmp_path: Path) -> None:
    """An MR whose edge slice carries W 9 / L 4 opened washed out: the loader took one file's window."""
    src = data_dir / "dcm_qa" / "sag" / "In" / "2_gre_field_mapping"
    files = sorted(src.glob("*.dcm"))
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    edge = min(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[0])).name
    ds = pydicom.dcmread(tmp_path / edge)
    ds.WindowCenter, ds.WindowWidth = 4, 9
    ds.save_as(tmp_path / edge)
    open_and_wait(qtbot, main_window, [tmp_path])
    view = main_window.grid.slots[0].view
    assert view.width_hu > 100 and view.volume.info.windows_vary
    assert (view.center, view.width_hu) != (4.0, 9.0)


def test_number_keys_reach_the_active_viewport_after_a_dock_click(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.slots[0].view
    opening = (view.center, view.width_hu)
    view.set_window(0.0, 10.0)
    tree = main_window.browser.tree
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(5, tree.viewport().height() - 5))
    qtbot.waitUntil(lambda: QApplication.focusWidget() is view, timeout=2000)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_0)  # 0: back to the file's window
    assert (view.center, view.width_hu) == opening


def test_toolbar_presets_and_tools_act_on_the_active_viewport(qtbot, main_window, crc_dir: Path) -> None:
    from viewer.core.presets import window_presets

    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.active_slot.view
    main_window._fill_presets_menu()
    actions = [a for a in main_window.presets_menu.actions() if a.text()]
    lung = next(a for a in actions if "lung" in a.text().lower())
    preset = next(p for p in window_presets("CT") if p.name.lower() == "lung")
    lung.trigger()
    assert (view.center, view.width_hu) == (preset.center, preset.width)
    main_window.tool_actions["distance"].trigger()
    assert view.state.tool == "distance"
    qtbot.keyClick(view, Qt.Key.Key_A)  # the key changes the tool: the toolbar follows
    assert view.state.tool == "angle" and main_window.tool_actions["angle"].isChecked()


def _row_greys(view) -> int:
    img = view.grab().toImage()
    y = img.height() // 2
    return len({QColor(img.pixel(x, y)).red() for x in range(img.width() // 2 - 40, img.width() // 2 + 40)})


def test_magnified_images_are_smoothed_unless_turned_off(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.active_slot.view
    view.state.set_zoom(12.0)  # 12x: each CT pixel covers many screen pixels
    qtbot.wait(20)
    assert main_window.act_smooth.isChecked()
    smooth = _row_greys(view)
    main_window.act_smooth.setChecked(False)
    qtbot.wait(20)
    blocky = _row_greys(view)
    # 80 screen pixels cover ~7 CT pixels: nearest shows ~7 greys, bilinear a ramp between them.
    assert blocky <= 12 and smooth > 2 * blocky


def test_measurement_list_names_the_image_and_jumps_to_it(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.active_slot.view
    view.set_slice(30)
    p0, p1 = view.state.point_to_lps(200, 200), view.state.point_to_lps(200, 300)
    view.state.image.add_measurement(Measurement("distance", [tuple(p0), tuple(p1)], plane="acquired", slice_index=30))
    view.set_slice(70)
    panel = main_window.measure_panel
    item = panel.list.item(0)
    assert item.text().startswith("Im 31  ")
    rect = panel.list.visualItemRect(item)
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert view.slice_index == 30
    qtbot.waitUntil(lambda: QApplication.focusWidget() is view, timeout=2000)  # keys back to the image


def test_reopening_a_series_uses_the_cached_volume(qtbot, main_window, ct_root: Path) -> None:
    open_and_wait(qtbot, main_window, [ct_root], load=False)
    stacks = main_window.browser.stacks
    crc = next(k for k, s in stacks.items() if len(s.files) == 100)
    j2k = next(k for k, s in stacks.items() if len(s.files) == 20)
    _load(qtbot, main_window, crc, 0)
    slot = main_window.grid.slots[0]
    first = slot.volume
    _load(qtbot, main_window, j2k, 0)
    assert slot.volume is not first
    submitted: list[str] = []
    original = main_window.background.submit
    main_window.background.submit = lambda channel, *a, **k: submitted.append(channel) or original(channel, *a, **k)
    try:
        _load(qtbot, main_window, crc, 0)  # back to the first series: no decode, the same volume
    finally:
        main_window.background.submit = original
    assert slot.volume is first and not [c for c in submitted if c.startswith("load:")]
    assert main_window.workspace.cache.hits >= 1
