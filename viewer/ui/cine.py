"""Cine: play the active viewport's slices at a chosen frame rate (key ``c`` toggles)."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from viewer.core.volume import Volume

DEFAULT_FPS = 10
MAX_FPS = 60


class CineTarget(Protocol):
    """A slice view cine can play (a ``SliceViewport``)."""

    @property
    def volume(self) -> Volume | None: ...

    @property
    def slice_index(self) -> int: ...

    def set_slice(self, k: int) -> None: ...


class Cine(QObject):
    """Advances ``target.set_slice`` on a main-thread timer, looping at the end (Weasis/Horos default).

    ``target`` is any slice view with ``volume``, ``slice_index`` and ``set_slice(k)``; the timer runs on
    the UI thread, so a frame is only scheduled when the previous one has been handled (no backlog).
    """

    running_changed = Signal(bool)
    fps_changed = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self.target: CineTarget | None = None
        self.fps = DEFAULT_FPS
        self.direction = 1

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def set_target(self, target: CineTarget | None) -> None:
        self.target = target

    def set_fps(self, fps: int) -> None:
        self.fps = int(min(max(fps, 1), MAX_FPS))
        self._timer.setInterval(round(1000 / self.fps))
        self.fps_changed.emit(self.fps)

    def start(self) -> None:
        if self.target is None or self.target.volume is None:
            return
        self._timer.start(round(1000 / self.fps))
        self.running_changed.emit(True)

    def stop(self) -> None:
        if self._timer.isActive():
            self._timer.stop()
            self.running_changed.emit(False)

    def toggle(self) -> None:
        self.stop() if self.running else self.start()

    def _tick(self) -> None:
        t = self.target
        vol = t.volume if t is not None else None
        if t is None or vol is None:
            self.stop()
            return
        n = vol.shape[0]
        t.set_slice((t.slice_index + self.direction) % n)
