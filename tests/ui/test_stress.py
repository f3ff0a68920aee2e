"""Loading series into several viewports while Python's cycle collector is forced to run often.

A segfault or hang here (a collection freeing a Qt object on a worker thread, a load delivered to a
deleted view) is what readers met as a crash mid-session. Sized to stay well under a minute."""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import QTimer

from tests.ui.conftest import open_and_wait

ROUNDS = 5


def test_loads_into_four_viewports_with_forced_collection(qtbot, main_window, ct_root: Path) -> None:
    open_and_wait(qtbot, main_window, [ct_root], load=False)
    stacks = main_window.browser.stacks
    keys = [k for k, s in stacks.items() if len(s.files) in (20, 100)]
    assert len(keys) == 2
    main_window.workspace.cache.limit_bytes = 0  # every load decodes
    main_window.set_layout("2x2")
    collections = [0]

    def collect() -> None:
        gc.collect()
        collections[0] += 1

    timer = QTimer()
    timer.timeout.connect(collect)
    timer.start(15)
    loaded: list[int] = []
    failed: list[str] = []
    main_window.series_loaded.connect(loaded.append)
    main_window.series_failed.connect(lambda _i, m: failed.append(m))
    try:
        for r in range(ROUNDS):
            # Two loads in flight at once, the second replacing an earlier one in the same viewport.
            main_window.load_stack(keys[r % 2], r % 4)
            main_window.load_stack(keys[(r + 1) % 2], (r + 2) % 4)
            qtbot.waitUntil(lambda: len(loaded) >= r + 1, timeout=120000)
        qtbot.waitUntil(lambda: all(not s.loading for s in main_window.grid.slots), timeout=120000)
    finally:
        timer.stop()
    assert failed == []
    assert collections[0] > ROUNDS
    for slot in main_window.grid.slots:
        assert slot.volume is not None and slot.volume.shape[0] in (20, 100)
        assert slot.view.displayed_image() is not None
