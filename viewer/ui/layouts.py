"""Viewport layouts (1x1, 1x2, 2x2, MPR), series drops, and linked scrolling by patient position.

:class:`ViewportGrid` holds up to four :class:`ViewportSlot`; each slot shows one series in a slice view
(:class:`viewer.ui.viewport.SliceViewport`) with a title bar and a message line for load errors. Series are dragged in from the study browser
(MIME type :data:`STACK_MIME`, the payload is the browser's stack key).

Linked scrolling (Weasis "synchronise", Horos "sync"): when a slot's slice changes, every other slot whose
volume shares the same non-empty FrameOfReferenceUID moves to the slice nearest to the same patient
position, measured along *its own* slice normal in mm — never by index, so series with different slice
steps or ranges stay anatomically aligned.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from viewer.core.volume import Volume
from viewer.ui.viewport import SliceViewport

STACK_MIME = "application/x-dicom-viewer-stack"
LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}


def frame_of_reference(volume: Volume | None) -> str:
    """The key that decides which series scroll together: FrameOfReferenceUID ("" when unknown).

    When the loader recorded no FrameOfReferenceUID, series of the same StudyInstanceUID are treated as
    one frame of reference (the series of one CT study share the table coordinates); series without
    either never link.
    """
    if volume is None:
        return ""
    if volume.info.frame_of_reference_uid:
        return "for:" + volume.info.frame_of_reference_uid
    if volume.info.study_uid:
        return "study:" + volume.info.study_uid
    return ""


def slice_position(volume: Volume, k: int) -> np.ndarray:
    """Patient LPS mm of the centre of slice ``k`` of ``volume``."""
    z, y, x = volume.shape
    return volume.voxel_to_patient(np.array([(x - 1) / 2.0, (y - 1) / 2.0, float(k)]))


def nearest_slice(volume: Volume, lps: np.ndarray) -> int | None:
    """Index of the slice of ``volume`` nearest to patient point ``lps`` (mm) along its slice normal.

    None when the point lies more than half a slice step outside the volume: a linked view whose series
    does not cover that position keeps its slice rather than pretending to show it.
    """
    k = float(volume.patient_to_voxel(np.asarray(lps, dtype=np.float64))[2])
    n = volume.shape[0]
    if k < -0.5 or k > n - 0.5:
        return None
    return int(min(max(round(k), 0), n - 1))


def make_slice_view(parent: QWidget | None = None) -> SliceViewport:
    """The slice view a slot shows (windowing, overlays, tools and measurements live there)."""
    return SliceViewport(parent=parent)


class ViewportSlot(QWidget):
    """One cell of the grid: title, slice view, and a drop target for series from the browser."""

    stack_dropped = Signal(int, str)  # slot index, stack key
    activated = Signal(int)

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = index
        self.setAcceptDrops(True)
        self.title = QLabel("Drop or double-click a series")
        self.title.setObjectName("viewportTitle")
        self.view = make_slice_view(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.setSpacing(0)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        self.stack_key: str | None = None
        self.volume: Volume | None = None
        self.preview: Volume | None = None
        self.loading = False
        self.error: str | None = None
        self.set_active(False)

    def set_active(self, active: bool) -> None:
        self.setProperty("active", active)
        self.setStyleSheet("ViewportSlot { border: 1px solid %s; }" % ("#3d8bfd" if active else "#333"))

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def show_volume(self, volume: Volume, slice_index: int | None = None) -> None:
        self.volume = volume
        self.error = None
        self.view.set_volume(volume, slice_index)

    def show_error(self, text: str) -> None:
        self.error = text
        self.loading = False
        self.volume = None
        self.view.set_volume(None)
        self.view.show_message("Cannot load this series:\n" + text.splitlines()[0][:300])

    def mousePressEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        self.activated.emit(self.index)
        super().mousePressEvent(ev)

    def dragEnterEvent(self, ev: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if ev.mimeData().hasFormat(STACK_MIME):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QDropEvent) -> None:  # noqa: N802 - Qt override
        data: QMimeData = ev.mimeData()
        if data.hasFormat(STACK_MIME):
            key = bytes(data.data(STACK_MIME).data()).decode()
            self.stack_dropped.emit(self.index, key)
            ev.acceptProposedAction()


class ViewportGrid(QWidget):
    """The central area: 1x1, 1x2 or 2x2 slots (or an MPR view), one of them active, linked scrolling."""

    layout_changed = Signal(str)
    active_changed = Signal(int)
    stack_dropped = Signal(int, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slots = [ViewportSlot(i, self) for i in range(4)]
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.active = 0
        self.linked = True
        self.layout_name = ""
        self.mpr: QWidget | None = None
        self._syncing = False
        for slot in self.slots:
            slot.activated.connect(self.set_active)
            slot.stack_dropped.connect(self.stack_dropped)
            slot.view.slice_changed.connect(lambda k, s=slot: self._on_slice_changed(s, k))
        self.set_layout("1x1")

    @property
    def visible_slots(self) -> list[ViewportSlot]:
        rows, cols = LAYOUTS.get(self.layout_name, (1, 1))
        return self.slots[: rows * cols] if self.layout_name in LAYOUTS else []

    def set_layout(self, name: str) -> None:
        """Show ``name``: "1x1", "1x2", "2x2" or "mpr" (the MPR view of the active slot's volume)."""
        if name not in LAYOUTS and name != "mpr":
            raise ValueError(f"unknown layout {name!r}; known: {', '.join([*LAYOUTS, 'mpr'])}")
        while self._grid.count():
            self._grid.takeAt(0)
        # Widgets outside the layout would still paint at (0, 0): hide every slot, show the used ones.
        for slot in self.slots:
            slot.hide()
        if self.mpr is not None:
            self.mpr.hide()
        if name == "mpr":
            for i in range(2):
                self._grid.setRowStretch(i, 1 if i == 0 else 0)
                self._grid.setColumnStretch(i, 1 if i == 0 else 0)
            self.mpr = self._make_mpr(self.slots[self.active].volume)
            self._grid.addWidget(self.mpr, 0, 0)
            self.mpr.show()
        else:
            rows, cols = LAYOUTS[name]
            for r in range(2):
                self._grid.setRowStretch(r, 1 if r < rows else 0)
            for c in range(2):
                self._grid.setColumnStretch(c, 1 if c < cols else 0)
            for i in range(rows * cols):
                self._grid.addWidget(self.slots[i], i // cols, i % cols)
                self.slots[i].show()
            if self.active >= rows * cols:
                self.set_active(0)
        self.layout_name = name
        self.layout_changed.emit(name)

    def _make_mpr(self, volume: Volume | None) -> QWidget:
        from viewer.ui.mpr import MprView

        view = MprView()
        if volume is not None:
            view.set_volume(volume)
        return view

    def set_active(self, index: int) -> None:
        self.active = index
        for slot in self.slots:
            slot.set_active(slot.index == index and len(self.visible_slots) > 1)
        self.active_changed.emit(index)

    def next_free_slot(self) -> int:
        """The active slot in 1x1, else the first visible empty slot, else the active one."""
        visible = self.visible_slots
        if len(visible) > 1:
            for slot in visible:
                if slot.volume is None and not slot.loading:
                    return slot.index
        return self.active

    def _on_slice_changed(self, source: ViewportSlot, k: int) -> None:
        if self._syncing or not self.linked or source.volume is None:
            return
        for_uid = frame_of_reference(source.volume)
        if not for_uid:
            return
        point = slice_position(source.volume, k)
        self._syncing = True
        try:
            for slot in self.visible_slots:
                if slot is source or slot.volume is None or frame_of_reference(slot.volume) != for_uid:
                    continue
                target = nearest_slice(slot.volume, point)
                if target is not None:
                    slot.view.set_slice(target)
        finally:
            self._syncing = False
