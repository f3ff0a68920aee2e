"""The main thread keeps running while a real series is indexed and loaded in the background."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QTimer


class GapMeter:
    """A main-thread timer that records the longest time between two of its ticks (ms)."""

    def __init__(self, interval_ms: int = 10) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.ticks = 0
        self.max_gap_ms = 0.0
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._tick()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.max_gap_ms = max(self.max_gap_ms, (now - self._last) * 1000.0)
        self._last = now
        self.ticks += 1


def test_the_app_keeps_responding_while_a_series_loads(qtbot, main_window, pancreas_dir: Path) -> None:
    meter = GapMeter()
    meter.start()
    with qtbot.waitSignal(main_window.series_loaded, timeout=120000):
        main_window.open_paths([str(pancreas_dir)])
    # With the header index warm the whole load can take less than a tick: let the meter tick a few
    # more times so it surely ran while the loader's last work was finishing.
    qtbot.wait(60)
    meter.stop()
    assert main_window.grid.slots[0].volume.shape[0] == 134
    # A sanity bound, not a benchmark (benchmarks/bench_event_loop.py measures the 50 ms target).
    assert meter.ticks >= 5
    assert meter.max_gap_ms < 1000.0, f"the UI thread was blocked for {meter.max_gap_ms:.0f} ms"
