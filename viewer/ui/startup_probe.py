"""Start-up timestamps for benchmarks/bench_startup.py: ``VIEWER_STARTUP_REPORT=SECONDS dicom-viewer PATH``.

Prints one line ``startup painted=<epoch s> first_image=<epoch s>`` to stdout once the main window has
been painted and a series' first image has been painted in a viewport, then quits SECONDS later (the
benchmark reads the memory at rest in between). Epoch seconds (``time.time()``) so the benchmark can
subtract the moment it started the process. Without the variable nothing here runs.

"Painted" is the first paint event of the window; "first image" is the first paint of a viewport's
graphics view after the window reported the image shown: the same two moments the benchmark's bare
PySide6 + pyqtgraph floor reports.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QGraphicsView, QWidget

if TYPE_CHECKING:
    from viewer.ui.main_window import MainWindow


class StartupProbe(QObject):
    def __init__(self, window: MainWindow, linger_s: float) -> None:
        super().__init__(window)
        self.window = window
        self.linger_s = linger_s
        self.painted: float | None = None
        self.image_set = False
        self.first_image: float | None = None
        QApplication.instance().installEventFilter(self)  # type: ignore[union-attr]
        window.first_image_shown.connect(self._on_image_shown)

    def _on_image_shown(self, _slot: int) -> None:
        self.image_set = True

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and isinstance(obj, QWidget):
            now = time.time()
            if self.painted is None and obj.window() is self.window:
                self.painted = now
            elif self.image_set and self.first_image is None and isinstance(obj.parent(), QGraphicsView):
                self.first_image = now
                print(f"startup painted={self.painted:.6f} first_image={self.first_image:.6f}", flush=True)
                QApplication.instance().removeEventFilter(self)  # type: ignore[union-attr]
                QTimer.singleShot(int(self.linger_s * 1000), QApplication.quit)
        return False


def attach_startup_probe(window: MainWindow, linger: str) -> StartupProbe | None:
    """Attach the probe when ``linger`` (the variable's value) is a number of seconds; else say why not."""
    try:
        seconds = float(linger)
    except ValueError:
        print(f"VIEWER_STARTUP_REPORT must be seconds to stay open after the first image, got {linger!r}",
              file=sys.stderr)
        return None
    return StartupProbe(window, seconds)
