"""MPR: axial, coronal and sagittal reformats of one volume, linked by a crosshair.

``MprView(image_state=None)`` holds three ``SliceViewport`` s that share one ``ImageState`` (volume,
window, invert, crosshair, measurements). A left click, or a Shift+left drag, in any plane moves the
crosshair (LPS mm) and the two other planes jump to the slices through it; scrolling one plane moves
the crosshair along that plane's normal. Reformats are strided views of the acquired grid drawn with
true millimetre proportions; when the grid is oblique to the patient axes the planes are resampled in
patient space and each view says so ("resampled: grid N° oblique").

Interface: ``set_volume(volume)``, ``show_message(text)``, ``clear_message()``, ``viewports``
(dict plane -> SliceViewport), ``image`` (the shared ImageState), ``volume_filters`` (the display
filter on the whole volume, shared by the planes: :class:`viewer.ui.display_filter.VolumeFilters`),
signal ``crosshair_moved(object)`` with the LPS point as a numpy array.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QSplitter, QVBoxLayout, QWidget

from viewer.core.volume import Volume
from viewer.state.image import ImageState
from viewer.state.view import ViewState
from viewer.ui.bindings import Bindings
from viewer.ui.display_filter import VolumeFilters
from viewer.ui.viewport import SliceViewport

MPR_PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")


class MprView(QWidget):
    """Three linked reformats of one volume side by side (axial | coronal | sagittal)."""

    crosshair_moved = Signal(object)

    def __init__(self, image: ImageState | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.image = image if image is not None else ImageState()
        self.viewports: dict[str, SliceViewport] = {}
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        # A display filter acts on the volume, computed once for the three planes (the main window hands
        # in io's 3-D filter as ``volume_filters.filter_volume``).
        self.volume_filters = VolumeFilters()
        for plane in MPR_PLANES:
            vp = SliceViewport(ViewState(self.image, plane), bindings=Bindings.mpr(), show_crosshair=True)
            self.viewports[plane] = vp
            vp.display_filter.volumes = self.volume_filters
            self.volume_filters.listeners.append(vp.display_filter.volume_ready)
            splitter.addWidget(vp)
            vp.state.subscribe(functools.partial(self._plane_scrolled, vp))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self._unsubscribe = self.image.subscribe(self._image_changed)
        self._following = False

    def close_view(self) -> None:
        """Stop observing the shared image state (it may outlive this view: the viewport's own)."""
        self._unsubscribe()
        self.volume_filters.close()
        for vp in self.viewports.values():
            vp.close_view()

    def setFocus(self, *args: Any) -> None:  # noqa: N802 - Qt override: the axial plane takes the keys
        self.viewports[MPR_PLANES[0]].setFocus(*args)

    def set_volume(self, volume: Volume | None) -> None:
        for vp in self.viewports.values():
            vp.clear_message()
        self.image.set_volume(volume)

    def show_message(self, text: str) -> None:
        for vp in self.viewports.values():
            vp.show_message(text)

    def clear_message(self) -> None:
        self.show_message("")

    def _image_changed(self, changes: frozenset[str]) -> None:
        if "crosshair" in changes and self.image.crosshair is not None:
            self._following = True
            try:
                for vp in self.viewports.values():
                    vp.state.set_slice_at(self.image.crosshair)
            finally:
                self._following = False
            self.crosshair_moved.emit(np.array(self.image.crosshair))

    def _plane_scrolled(self, vp: SliceViewport, changes: frozenset[str]) -> None:
        if "slice" not in changes or self._following or self.image.crosshair is None or vp.state.geometry is None:
            return
        # Keep the crosshair on the slice the user scrolled to: move it along this plane's normal only.
        _, row, col = vp.state.lps_to_point(self.image.crosshair)
        self.image.set_crosshair(vp.state.point_to_lps(row, col))
