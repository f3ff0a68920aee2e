"""Helpers shared by the benchmarks: where the data is, medians of repeats, machine line."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def data_root() -> Path:
    env = os.environ.get("VIEWER_TEST_DATA")
    root = Path(env) if env else ROOT.parent / "shared" / "data"
    if not root.is_dir():
        sys.exit(f"real data not found at {root}: set VIEWER_TEST_DATA")
    return root


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time (s) of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> str:
    return f"{platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} cpu, " \
           f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def linked_folder(folder: Path, originals: list[Path], copies: int) -> int:
    """A large folder without the disk: ``copies`` sub-folders each holding a symlink to every original
    (the scanner reads the real bytes through them). Returns the number of files made."""
    for k in range(copies):
        sub = folder / f"c{k:03d}"
        sub.mkdir(parents=True)
        for i, p in enumerate(originals):
            os.symlink(p, sub / f"{i:04d}.dcm")
    return copies * len(originals)


class EventLoopGaps:
    """The Qt main thread's stalls: gaps (ms) between ticks of a ``interval_ms`` timer while it runs.
    ``start()``, pump the event loop, ``stop()`` -> the gaps after the first tick (a QApplication must exist)."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QElapsedTimer, QTimer

        self.clock = QElapsedTimer()
        self.gaps: list[float] = []
        self._last = 0.0
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self.clock.nsecsElapsed() / 1e6
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self.clock.start()
        self._last = 0.0
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.gaps[1:] or [0.0]
