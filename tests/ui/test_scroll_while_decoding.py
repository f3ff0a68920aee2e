"""Scroll while decoding: the viewport shows the volume being filled, a note on slices not decoded yet."""

from __future__ import annotations

import numpy as np

from tests.ui.conftest import open_and_wait


def test_a_compressed_series_is_shown_while_it_fills(qtbot, main_window, data_dir) -> None:
    from viewer.ui import main_window as mw

    posts: list[tuple[int, int]] = []
    real = mw.MainWindow._on_filling

    def spy(self, idx, filling):
        posts.append((int(filling.ready.sum()), len(filling.ready)))
        real(self, idx, filling)

    mw.MainWindow._on_filling = spy
    try:
        open_and_wait(qtbot, main_window, [data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"])
    finally:
        mw.MainWindow._on_filling = real
    assert posts and posts[-1] == (20, 20)  # the last post says every slice is in
    assert [n for n, _ in posts] == sorted(n for n, _ in posts)
    slot = main_window.grid.slots[0]
    assert slot.volume.shape[0] == 20 and main_window._filling.get(0) is None
    assert slot.view.overlay().message == ""


def test_not_decoded_slices_say_so_and_appear_when_ready(qtbot, main_window, crc_dir) -> None:
    """The main window's side, driven with the Filling posts a load makes (a real volume, half ready)."""
    from viewer.ui.workers import Filling

    open_and_wait(qtbot, main_window, [crc_dir])
    slot = main_window.grid.slots[0]
    full = slot.volume
    from viewer.core.volume import Volume

    arr = np.zeros_like(full.array)
    vol = Volume(arr, full.affine, full.modality, full.series_uid, full.info)
    ready = np.zeros(arr.shape[0], dtype=bool)
    mid = arr.shape[0] // 2
    arr[mid - 5:mid + 5] = full.array[mid - 5:mid + 5]
    ready[mid - 5:mid + 5] = True
    slot.model.start_loading(slot.stack_key)
    main_window._on_filling(0, Filling(vol, ready.copy()))
    view = slot.view
    assert view.volume is vol and view.slice_index == mid
    assert view.overlay().message == ""
    shown_mid = np.asarray(view.displayed_image()).copy()
    view.set_slice(2)  # the user scrolls to a slice that is not decoded yet
    assert "being decoded" in view.overlay().message and "10/100" in view.overlay().message
    assert not np.asarray(view.displayed_image()).any() or np.ptp(np.asarray(view.displayed_image())) == 0
    arr[:] = full.array  # the loader stores the rest...
    main_window._on_filling(0, Filling(vol, np.ones_like(ready)))  # ...and says so
    assert view.overlay().message == ""
    assert view.slice_index == 2
    assert np.ptp(np.asarray(view.displayed_image())) > 0  # slice 2 re-drawn with its values
    view.set_slice(mid)
    np.testing.assert_array_equal(np.asarray(view.displayed_image()), shown_mid)
