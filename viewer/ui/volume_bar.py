"""The volume slider of a 4D series (time points, diffusion directions, echoes, cardiac phases), with cine
across volumes.

It sits under a viewport whose volume has a fourth axis (``Volume.volumes``) and swaps the viewport's
pixels in place (``ImageState.swap_volume``): slice, window, zoom and measurements stay where the reader
put them. Volumes are read one at a time on the background pool by one ``SeriesLoader`` per series (its
headers are read once); loaded volumes are kept in a small cache bounded by memory
(``MAX_CACHE_BYTES``), so cine loops play from memory once every volume has been read. One load runs at
a time; a newer request replaces a waiting one, so dragging the slider never queues stale work.

The hook into the rest of the window is :func:`attach_volume_bar`, called when a series has loaded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from viewer.core.jobs import JobContext
from viewer.core.volume import Volume
from viewer.state.services import IoServices, SeriesLoaderLike, SeriesSource
from viewer.ui.layouts import ViewportSlot
from viewer.ui.viewport import SliceViewport
from viewer.ui.workers import Background

#: Loaded volumes kept for the slider and cine (the shown one is never evicted).
MAX_CACHE_BYTES = 512 * 1024 * 1024
#: Cine across volumes, volumes per second.
CINE_FPS = 4.0


class VolumeBar(QWidget):
    """Slider, label and cine button over the volumes of the series shown in ``view``."""

    volume_shown = Signal(int)

    def __init__(self, background: Background, io: IoServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.background = background
        self.io = io
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("volumeSlider")
        self.label = QLabel()
        self.play = QToolButton()
        self.play.setText("▶")
        self.play.setCheckable(True)
        self.play.setToolTip("Cine across volumes")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addWidget(self.play)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.label)
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / CINE_FPS))
        self.timer.timeout.connect(self._cine_step)
        self.play.toggled.connect(self.set_cine)
        self.slider.valueChanged.connect(self.request)
        self.view: SliceViewport | None = None
        self.stack: SeriesSource | None = None
        self.loader: SeriesLoaderLike | None = None
        self.cache: OrderedDict[int, Volume] = OrderedDict()
        self.shown: Volume | None = None
        self.current = 0
        self.wanted = 0
        self.count = 0
        self.busy = False
        self.pending: int | None = None
        self.hide()

    # -- attaching ------------------------------------------------------------------------------------
    def attach(self, view: SliceViewport, stack: SeriesSource | None, volume: Volume) -> None:
        """Follow ``view``, which shows ``volume`` of ``stack`` (hidden when ``volume`` is 3D)."""
        self.detach()
        if volume.volumes is None or volume.volumes.count < 2 or stack is None:
            return
        # The view may hold a repaired copy of ``volume`` (ImageState.set_volume): follow what it shows.
        self.view, self.stack, self.shown = view, stack, view.volume
        self.count = volume.volumes.count
        self.current = self.wanted = volume.volumes.index
        self.cache[self.current] = volume
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.count - 1)
        self.slider.setValue(self.current)
        self.slider.blockSignals(False)
        self._update_label(volume)
        self.show()

    def detach(self) -> None:
        self.set_cine(False)
        self.view = self.stack = self.loader = self.shown = None
        self.cache.clear()
        self.pending = None
        self.count = 0
        self.hide()

    # -- requests -------------------------------------------------------------------------------------
    def request(self, index: int) -> None:
        """Show volume ``index``: at once when cached, else after it is read."""
        if self.view is None or not 0 <= index < self.count:
            return
        if self.view.volume is not self.shown:
            self.detach()  # another series (or a preview) took the viewport over
            return
        self.wanted = index
        cached = self.cache.get(index)
        if cached is not None:
            self.cache.move_to_end(index)
            self._show(index, cached)
            return
        if self.busy:
            self.pending = index
            return
        self._start(index)

    def _start(self, index: int) -> None:
        stack, loader, make = self.stack, self.loader, self.io.series_loader
        if stack is None or (loader is None and make is None):
            return
        self.busy = True

        def job(ctx: JobContext) -> object:
            lo = loader
            if lo is None:
                assert stack is not None and make is not None
                lo = make(list(stack.files), series_uid=stack.series_uid, cancel=ctx.cancelled,
                          records=list(stack.records) or None)
            ctx.check()
            return lo, index, lo.load(volume=index, cancel=ctx.cancelled)

        self.background.submit(f"volume:{id(self)}", job, on_result=self._loaded, on_error=self._failed,
                               replace=False)

    def _loaded(self, result: Any) -> None:
        loader, index, volume = result
        self.busy = False
        if self.stack is None:
            return  # detached meanwhile
        self.loader = loader
        self.cache[index] = volume
        self._evict()
        if self.pending is not None:
            nxt, self.pending = self.pending, None
            self.request(nxt)
        elif index == self.wanted:
            self._show(index, volume)

    def _failed(self, message: str) -> None:
        self.busy = False
        self.set_cine(False)
        self.label.setText("volume failed: " + message.splitlines()[0][:80])

    def _evict(self) -> None:
        total = sum(v.array.nbytes for v in self.cache.values())
        for key in list(self.cache):
            if total <= MAX_CACHE_BYTES or len(self.cache) <= 1:
                break
            if key == self.current:
                continue
            total -= self.cache.pop(key).array.nbytes

    def _show(self, index: int, volume: Volume) -> None:
        if self.view is None:
            return
        self.current = index
        self.shown = volume
        self.view.state.image.swap_volume(volume)
        self.shown = self.view.volume  # swap_volume may hand the view a repaired copy
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self._update_label(volume)
        self.volume_shown.emit(index)

    def _update_label(self, volume: Volume) -> None:
        from viewer.ui.overlay import volume_label

        self.label.setText(volume_label(volume))

    # -- cine -----------------------------------------------------------------------------------------
    def set_cine(self, on: bool) -> None:
        if self.play.isChecked() != on:
            self.play.blockSignals(True)
            self.play.setChecked(on)
            self.play.blockSignals(False)
        self.play.setText("⏸" if on else "▶")
        if on and self.count > 1:
            self.timer.start()
        else:
            self.timer.stop()

    def _cine_step(self) -> None:
        if self.busy and self.pending is not None:
            return  # still reading: wait rather than skip volumes
        nxt = (self.current + 1) % self.count
        if nxt not in self.cache and self.busy:
            return
        self.request(nxt)


def attach_volume_bar(slot: ViewportSlot, background: Background, io: IoServices, stack: SeriesSource | None,
                      volume: Volume) -> VolumeBar | None:
    """Give ``slot`` (a viewport cell with ``view`` and a vertical layout) a :class:`VolumeBar` following
    ``volume`` of ``stack``; an existing bar is reused, and hidden for a 3D volume."""
    bar: VolumeBar | None = slot.findChild(VolumeBar)
    if bar is None:
        if volume.volumes is None:
            return None
        bar = VolumeBar(background, io, slot)
        layout = slot.layout()
        if isinstance(layout, QVBoxLayout):
            layout.addWidget(bar)
    bar.attach(slot.view, stack, volume)
    return bar
