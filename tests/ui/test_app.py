"""The application as a user drives it: double-click a series, see its slice; errors; cine; CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from tests.ui.conftest import open_and_wait
from viewer.core.windowing import window_to_uint8


def _double_click(qtbot, tree, item) -> None:
    tree.scrollToItem(item)
    rect = tree.visualItemRect(item)
    # Qt's item views only accept a double click on the item the preceding press was on.
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def _drawn(view) -> np.ndarray:
    return np.asarray(view.displayed_image())


def test_double_click_loads_the_series_and_draws_its_slice(qtbot, main_window, crc_dir: Path, io_services) -> None:
    open_and_wait(qtbot, main_window, [crc_dir], load=False)
    (item,) = main_window.browser.items.values()
    previews: list[int] = []
    main_window.first_image_shown.connect(previews.append)
    with qtbot.waitSignal(main_window.series_loaded, timeout=60000):
        _double_click(qtbot, main_window.browser.tree, item)
    assert previews == [0]  # the first image was on screen before (or when) the volume arrived
    slot = main_window.grid.slots[0]
    vol = slot.volume
    assert vol.shape == (100, 512, 512) and vol.modality == "CT"
    expected = io_services.load_series(str(crc_dir))
    np.testing.assert_array_equal(vol.array, expected.array)
    view = slot.view
    k = view.slice_index
    assert 0 <= k < 100
    from viewer.ui.workers import file_window

    c, w = file_window(vol)
    np.testing.assert_array_equal(_drawn(view), window_to_uint8(vol.array[k], c, w))
    assert "100×512×512" in slot.title.text()


def test_preview_slice_is_kept_when_the_volume_arrives(qtbot, main_window, pancreas_dir: Path) -> None:
    shown: list[float] = []
    main_window.first_image_shown.connect(lambda _i: shown.append(main_window.last_first_image_ms))
    open_and_wait(qtbot, main_window, [pancreas_dir])
    assert len(shown) == 1 and shown[0] is not None
    slot = main_window.grid.slots[0]
    assert slot.volume.shape[0] == 134
    # The preview was the middle file; the full volume opens on the slice at the same position.
    from viewer.ui.layouts import slice_position

    z = slice_position(slot.volume, slot.view.slice_index)[2]
    zs = [slice_position(slot.volume, k)[2] for k in range(134)]
    assert min(zs) < z < max(zs)
    # The loader decodes the middle slice in sorted order first; the view stays on it.
    assert slot.view.slice_index == 134 // 2
    assert slot.view.overlay().message == ""


def test_a_series_that_cannot_load_says_why(qtbot, main_window, tmp_path: Path) -> None:
    from viewer.core.records import Stack

    bogus = tmp_path / "broken.dcm"
    bogus.write_bytes(b"DICM" * 10)
    main_window.browser._add_stack(Stack(series_uid="1.2.3", files=[str(bogus)], modality="CT",
                                         description="broken"))
    key = next(iter(main_window.browser.stacks))
    with qtbot.waitSignal(main_window.series_failed, timeout=30000) as blocker:
        main_window.load_stack(key, 0)
    message = blocker.args[1]
    assert message
    slot = main_window.grid.slots[0]
    assert slot.volume is None and slot.error == message
    assert "Cannot load" in slot.view.overlay().message
    assert "Cannot load" in main_window.browser.items[key].toolTip(1)


def test_cine_plays_the_active_viewport(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.slots[0].view
    start = view.slice_index
    main_window.fps_box.setValue(60)
    main_window.act_cine.trigger()
    assert main_window.cine.running and main_window.act_cine.isChecked()
    qtbot.waitUntil(lambda: (view.slice_index - start) % 100 >= 3, timeout=5000)
    main_window.act_cine.trigger()
    assert not main_window.cine.running
    stopped = view.slice_index
    qtbot.wait(100)
    assert view.slice_index == stopped


def test_recent_folders_are_remembered(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir], load=False)
    assert main_window.settings.recent_folders()[0] == str(crc_dir.resolve()) or \
        main_window.settings.recent_folders()[0] == str(crc_dir.absolute())
    texts = [a.text() for a in main_window.recent_menu.actions()]
    assert main_window.settings.recent_folders()[0] in texts


def test_run_app_rejects_a_missing_path(capsys) -> None:
    from viewer.app import run_app

    assert run_app(["/no/such/folder"]) == 2
    assert "not found" in capsys.readouterr().err


def test_measurement_panel_lists_and_deletes_the_active_viewports_measurements(qtbot, main_window,
                                                                              crc_dir: Path) -> None:
    from viewer.state.measurements import Measurement

    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.slots[0].view
    vol = view.volume
    k = view.slice_index
    p0 = tuple(vol.voxel_to_patient(np.array([100.0, 200.0, k])))
    p1 = tuple(vol.voxel_to_patient(np.array([200.0, 200.0, k])))
    view.state.image.add_measurement(Measurement("distance", [p0, p1], "acquired", k))
    panel = main_window.measure_panel
    qtbot.waitUntil(lambda: panel.list.count() == 1 and "mm" in panel.list.item(0).text(), timeout=3000)
    # 100 columns at the series' column spacing, in mm.
    expected = 100 * vol.spacing[0]
    assert f"{expected:.1f} mm" in panel.list.item(0).text()
    panel.list.setCurrentRow(0)
    qtbot.keyClick(panel, Qt.Key.Key_Delete)
    assert view.measurements() == []
    assert "No measurements" in panel.list.item(0).text()


def test_files_dropped_on_the_window_are_opened(qtbot, main_window, crc_dir: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(crc_dir))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(main_window.series_loaded, timeout=60000):
        main_window.dropEvent(event)
    assert [len(s.files) for s in main_window.browser.stacks.values()] == [100]


def test_a_dicomdir_opens_with_its_patients(qtbot, main_window) -> None:
    import pydicom

    dicomdir = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "DICOMDIR"
    open_and_wait(qtbot, main_window, [dicomdir], load=False)
    tree = main_window.browser.tree
    patients = {tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())}
    assert any("Doe Archibald" in p for p in patients) and any("Doe Peter" in p for p in patients)
    modalities = {item.text(1).split()[0] for item in main_window.browser.items.values()}
    assert {"CT", "MR", "CR"} <= modalities


def test_c_key_toggles_cine_and_the_tree_drags_series_keys(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    view = main_window.grid.slots[0].view
    main_window.activateWindow()
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_C)
    assert main_window.cine.running
    qtbot.keyClick(view, Qt.Key.Key_C)
    assert not main_window.cine.running
    from viewer.ui.layouts import STACK_MIME

    (key, item), = main_window.browser.items.items()
    data = main_window.browser.tree.mimeData([item])
    assert bytes(data.data(STACK_MIME).data()).decode() == key


def test_the_window_loads_with_the_scanners_header_records(qtbot, main_window, crc_dir: Path) -> None:
    """The browser's scan already read every header: the load reuses those records, not a second pass."""
    import dataclasses

    seen: list[object] = []
    real = main_window.io.series_loader

    def spy(*args, **kwargs):
        seen.append(kwargs.get("records"))
        return real(*args, **kwargs)

    main_window.io = dataclasses.replace(main_window.io, series_loader=spy)
    open_and_wait(qtbot, main_window, [crc_dir])
    (records,) = seen
    assert records is not None and len(records) == 100
    assert {r.path for r in records} == set(main_window.browser.stacks[next(iter(main_window.browser.stacks))].files)
    assert main_window.grid.slots[0].volume.shape == (100, 512, 512)


def test_cycles_are_collected_on_the_main_thread_only(qapp) -> None:
    """A worker thread must never run Python's cycle collector (it would destroy Qt objects there)."""
    import gc
    import threading

    from viewer.app import collect_garbage_on_the_main_thread, make_application

    make_application()
    collector = collect_garbage_on_the_main_thread()
    assert not gc.isenabled()
    assert collector.timer.isActive()
    threads: list[str] = []
    gc.callbacks.append(lambda phase, info: threads.append(threading.current_thread().name))
    try:
        def churn() -> None:  # far more container allocations than gen 0's threshold
            for _ in range(50_000):
                a: list = []
                a.append(a)

        worker = threading.Thread(target=churn, name="churn")
        worker.start()
        worker.join()
        assert "churn" not in threads
        collector.check()  # what the timer does, on this (the main) thread
        assert threads and set(threads) == {threading.main_thread().name}
    finally:
        gc.callbacks.pop()
