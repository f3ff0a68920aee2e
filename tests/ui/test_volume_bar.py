"""4D series in the window: the volume slider swaps volumes in place, cine plays across them, and the
overlay numbers images by the file's InstanceNumber."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.ui.conftest import open_and_wait
from viewer.ui.volume_bar import VolumeBar


def test_volume_slider_and_cine_across_volumes(qtbot, main_window, data_dir: Path, io_services) -> None:
    folder = data_dir / "dcm_qa" / "sag" / "In" / "2_fmri_SagAP"  # 6 Siemens mosaics: 6 time points
    open_and_wait(qtbot, main_window, [folder])
    slot = main_window.grid.slots[0]
    bar = slot.findChild(VolumeBar)
    assert bar is not None and bar.isVisibleTo(main_window) and bar.count == 6
    view = slot.view
    view.set_slice(20)
    view.set_window(900.0, 1500.0)
    with qtbot.waitSignal(bar.volume_shown, timeout=60000) as blocker:
        bar.slider.setValue(3)
    assert blocker.args == [3]
    expected = io_services.load_series(str(folder), volume=3)
    np.testing.assert_array_equal(view.volume.array, expected.array)
    assert not np.array_equal(expected.array, io_services.load_series(str(folder), volume=0).array)
    # The reader's place stays: slice, window.
    assert view.slice_index == 20 and (view.center, view.width_hu) == (900.0, 1500.0)
    assert "time 4/6" in view.overlay().bottom_left
    assert "time 4/6" in bar.label.text()
    seen: list[int] = []
    bar.volume_shown.connect(seen.append)
    bar.play.setChecked(True)
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=60000)
    bar.play.setChecked(False)
    assert seen[:3] == [4, 5, 0]  # in order, wrapping round
    assert view.slice_index == 20


def test_a_3d_series_has_no_volume_bar(qtbot, main_window, crc_dir: Path) -> None:
    open_and_wait(qtbot, main_window, [crc_dir])
    bar = main_window.grid.slots[0].findChild(VolumeBar)
    assert bar is None or not bar.isVisibleTo(main_window)
