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

import shiboken6
from PySide6.QtCore import QEvent, QMimeData, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QPainter, QPen
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from viewer.core.volume import Volume
from viewer.state.workspace import (LAYOUTS, ViewportModel, Workspace, frame_of_reference, nearest_slice,
                                    slice_position)
from viewer.ui.derived_layer import DerivedLayer
from viewer.ui.mpr import MprView
from viewer.ui.viewport import SliceViewport

ACTIVE_COLOUR = "#3d8bfd"
IDLE_COLOUR = "#333333"
ACTIVE_BORDER_PX = 2

STACK_MIME = "application/x-dicom-viewer-stack"
# Re-exported: the geometry of linked scrolling lives in the application model.
__all__ = ["LAYOUTS", "STACK_MIME", "ViewportGrid", "ViewportSlot", "frame_of_reference", "nearest_slice",
           "slice_position"]


def make_slice_view(model: ViewportModel, parent: QWidget | None = None) -> SliceViewport:
    """The slice view a slot shows (windowing, overlays, tools and measurements live there)."""
    return SliceViewport(state=model.view, parent=parent)


class ViewportSlot(QWidget):
    """One cell of the grid: title, slice view, and a drop target for series from the browser.

    It draws its :class:`~viewer.state.workspace.ViewportModel` (series, status, volume, error); the
    model, not the widget, holds those facts.
    """

    stack_dropped = Signal(int, str)  # slot index, stack key
    activated = Signal(int)

    def __init__(self, model: ViewportModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.index = model.index
        self.setAcceptDrops(True)
        self.title = QLabel("Drop or double-click a series")
        self.title.setObjectName("viewportTitle")
        self.view = make_slice_view(model, self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(ACTIVE_BORDER_PX, ACTIVE_BORDER_PX, ACTIVE_BORDER_PX, ACTIVE_BORDER_PX)
        lay.setSpacing(0)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        self._active = False
        self._unsubscribe = model.subscribe(self._model_changed)
        self._unsubscribe_view = model.view.subscribe(self._view_changed)
        self.derived: DerivedLayer | None = None  # SEG/SR drawn over this slot's series (set by the grid)
        # A click anywhere in the view (tools, scrolling) makes this the active viewport.
        self.view.installEventFilter(self)
        self.view.viewport().installEventFilter(self)

    # The model's facts, read where the old widget attributes were.
    @property
    def stack_key(self) -> str | None:
        return self.model.series_key

    @property
    def volume(self) -> Volume | None:
        return self.model.volume

    @property
    def preview(self) -> Volume | None:
        return self.model.preview

    @property
    def loading(self) -> bool:
        return self.model.busy

    @property
    def error(self) -> str | None:
        return self.model.error

    @property
    def active(self) -> bool:
        return self._active

    def set_active(self, active: bool) -> None:
        """Outline the active viewport (a 2 px accent frame drawn in :meth:`paintEvent`)."""
        if active != self._active:
            self._active = active
            self.setProperty("active", active)
            self.update()

    def paintEvent(self, ev: Any) -> None:  # noqa: N802 - Qt override
        super().paintEvent(ev)
        painter = QPainter(self)
        pen = QPen(QColor(ACTIVE_COLOUR if self._active else IDLE_COLOUR))
        pen.setWidth(ACTIVE_BORDER_PX)
        pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
        painter.setPen(pen)
        half = ACTIVE_BORDER_PX / 2
        painter.drawRect(QRectF(half, half, self.width() - ACTIVE_BORDER_PX, self.height() - ACTIVE_BORDER_PX))
        painter.end()

    def set_title(self, text: str) -> None:
        self.title.setText(text)

    def _model_changed(self, changes: frozenset[str]) -> None:
        if not shiboken6.isValid(self):
            return
        m = self.model
        if "status" in changes:
            if m.status == "preview" and m.preview_total > 1:
                self.view.show_message(f"Loading {m.preview_total} images…")
            elif m.status == "loaded":
                self.view.clear_message()
            elif m.status == "failed" and m.error is not None:
                self.view.show_message("Cannot load this series:\n" + m.error.splitlines()[0][:300])
        if "ready" in changes:
            self._show_arrival()

    def _view_changed(self, changes: frozenset[str]) -> None:
        if "slice" in changes and self.model.ready is not None and shiboken6.isValid(self):
            self._show_arrival()

    def _show_arrival(self) -> None:
        """A series still arriving: say so over a slice whose instance is not stored yet."""
        ready, view = self.model.ready, self.model.view
        if ready is None or self.model.status != "preview":
            return
        k = view.slice_index
        if view.plane == "acquired" and 0 <= k < len(ready) and not ready[k]:
            total = self.model.preview_total
            self.view.show_message(f"Image {k + 1} not retrieved yet ({int(ready.sum())} of "
                                   f"{total if total > 0 else '?'} stored)")
        else:
            self.view.clear_message()

    def show_volume(self, volume: Volume, slice_index: int | None = None) -> None:
        self.model.show_volume(volume, self.model.series_key, slice_index)

    def show_error(self, text: str) -> None:
        self.model.fail(text)

    def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 - Qt override
        if ev.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.Wheel, QEvent.Type.FocusIn):
            self.activated.emit(self.index)
        return False

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
    """The central area: 1x1, 1x2 or 2x2 slots (or an MPR view), one of them active, linked scrolling.

    It draws the :class:`~viewer.state.workspace.Workspace`'s layout, active viewport and viewports; the
    workspace decides linked scrolling. The MPR view shares the active viewport's image state (volume,
    window, measurements), opens at its current slice and is deleted when the layout changes again.
    """

    layout_changed = Signal(str)
    active_changed = Signal(int)
    stack_dropped = Signal(int, str)

    def __init__(self, workspace: Workspace | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace if workspace is not None else Workspace()
        self.slots = [ViewportSlot(vp, self) for vp in self.workspace.viewports]
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.layout_name = ""
        self.mpr: MprView | None = None
        for slot in self.slots:
            slot.activated.connect(self.set_active)
            slot.stack_dropped.connect(self.stack_dropped)
            slot.derived = DerivedLayer(slot.view, self.workspace)
        self._unsubscribe = self.workspace.subscribe(self._workspace_changed)
        self.set_layout("1x1")

    @property
    def active(self) -> int:
        return self.workspace.active

    @property
    def linked(self) -> bool:
        return self.workspace.linked

    @linked.setter
    def linked(self, on: bool) -> None:
        self.workspace.set_linked(on)

    @property
    def visible_slots(self) -> list[ViewportSlot]:
        return [self.slots[vp.index] for vp in self.workspace.visible]

    @property
    def active_slot(self) -> ViewportSlot:
        return self.slots[self.workspace.active]

    def set_layout(self, name: str) -> None:
        """Show ``name``: "1x1", "1x2", "2x2" or "mpr" (the MPR view of the active slot's volume)."""
        self.workspace.set_layout(name)

    def set_active(self, index: int) -> None:
        # Every click and wheel event in a view lands here: only a change of viewport does anything.
        if index != self.workspace.active:
            self.workspace.set_active(index)

    def next_free_slot(self) -> int:
        return self.workspace.next_free_viewport()

    def focus_active(self) -> None:
        """Give the keyboard to the active viewport (number keys, Enter, Backspace act where one looks)."""
        target = self.mpr if self.mpr is not None and self.layout_name == "mpr" else self.active_slot.view
        if target is not None:
            target.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- workspace -> widgets ---------------------------------------------------------------------------
    def _workspace_changed(self, changes: frozenset[str]) -> None:
        if not shiboken6.isValid(self):
            return
        if "layout" in changes and self.workspace.layout != self.layout_name:
            self._show_layout(self.workspace.layout)
        if "active" in changes or "layout" in changes:
            self._show_active()

    def _show_active(self) -> None:
        several = len(self.workspace.visible) > 1
        for slot in self.slots:
            slot.set_active(several and slot.index == self.workspace.active)
        self.active_changed.emit(self.workspace.active)

    def _show_layout(self, name: str) -> None:
        while self._grid.count():
            self._grid.takeAt(0)
        # Widgets outside the layout would still paint at (0, 0): hide every slot, show the used ones.
        for slot in self.slots:
            slot.hide()
        self._close_mpr()
        if name == "mpr":
            for i in range(2):
                self._grid.setRowStretch(i, 1 if i == 0 else 0)
                self._grid.setColumnStretch(i, 1 if i == 0 else 0)
            self.mpr = self._make_mpr(self.workspace.active_viewport)
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
        self.layout_name = name
        self.layout_changed.emit(name)

    def _make_mpr(self, model: ViewportModel) -> MprView:
        """Three planes over the active viewport's own image state: same volume, window, measurements;
        the crosshair starts at the centre of the slice the reader is on."""
        from viewer.ui.mpr import MprView

        view = model.view
        if view.volume is not None and view.geometry is not None:
            rows, cols = view.geometry.shape
            model.image.set_crosshair(view.point_to_lps((rows - 1) / 2, (cols - 1) / 2))
        return MprView(model.image, parent=self)

    def _close_mpr(self) -> None:
        """Delete the MPR view (its planes, resampled slices and subscriptions) and put the acquired view
        of the viewport at the crosshair the reader moved to."""
        if self.mpr is None:
            return
        mpr, self.mpr = self.mpr, None
        image = mpr.image
        mpr.close_view()
        mpr.hide()
        self._grid.removeWidget(mpr)
        mpr.setParent(None)
        mpr.deleteLater()
        for vp in self.workspace.viewports:
            if vp.image is image and image.crosshair is not None and vp.view.geometry is not None:
                vp.view.set_slice_at(image.crosshair)
