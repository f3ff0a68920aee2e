"""Brush and eraser on the mask of one label, drawn over the slice as a coloured, semi-transparent overlay.

Mouse (left button, while the brush or eraser is on): paint/erase discs along the drag; one drag is one
undo step, saved when the button is released. Keys on the viewport: ``[`` / ``]`` brush size,
``F`` fill the region under the cursor, ``N`` copy this slice's mask to the next slice, Ctrl+Z / Ctrl+Shift+Z
undo / redo (shared with the labels' undo stack).

Masks are edited on acquired slices only (a mask belongs to the DICOM images of the series); the tool
switches the viewport to the acquired plane when it is turned on. Brush radii are in image pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QGraphicsEllipseItem, QHBoxLayout, QPushButton,
                               QSlider, QSpinBox, QWidget)

from viewer.annotations.roi_geometry import slice_keys
from viewer.annotations.session import MaskEditor

MIN_RADIUS, MAX_RADIUS = 1, 100


def mask_rgba(mask: np.ndarray, rgb: tuple[int, int, int], opacity: float) -> np.ndarray:
    """(rows, cols, 4) uint8 RGBA: ``rgb`` at ``opacity`` (0..1) where ``mask`` is set, transparent elsewhere."""
    out = np.zeros(mask.shape + (4,), dtype=np.uint8)
    out[mask] = (*rgb, int(round(255 * min(max(opacity, 0.0), 1.0))))
    return out


class BrushControls(QWidget):
    """Brush settings (label, mode, size, opacity, fill, copy to next) and the mouse/key handling on the
    label panel's viewport. ``panel`` is the :class:`~viewer.ui.label_panel.LabelPanel` whose session
    (store, label set, annotator, undo stack) the masks belong to."""

    def __init__(self, panel: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.panel = panel
        self.editor: MaskEditor | None = None
        self._editor_key: tuple[Any, ...] | None = None
        self._view: Any = None
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(10)
        self._cursor_rc: tuple[float, float] | None = None
        self._dragging = False
        # The brush's footprint under the cursor: where the next dab lands, at its true size.
        self.outline = QGraphicsEllipseItem()
        self.outline.setPen(pg.mkPen((255, 255, 255, 220), width=1.5, cosmetic=True))
        self.outline.setZValue(11)
        self.outline.setVisible(False)

        self.label_box = QComboBox(self)
        self.mode_buttons = QButtonGroup(self)
        modes = QHBoxLayout()
        self.off_button, self.brush_button, self.eraser_button = (QPushButton(t, self)
                                                                  for t in ("Off", "Brush", "Eraser"))
        for i, b in enumerate((self.off_button, self.brush_button, self.eraser_button)):
            b.setCheckable(True)
            # The app style does not mark checked push buttons; the chosen tool must be visible.
            b.setStyleSheet("QPushButton:checked { background-color: #2f6fbf; color: white; }")
            self.mode_buttons.addButton(b, i)
            modes.addWidget(b)
        self.off_button.setChecked(True)
        self.size_box = QSpinBox(self)
        self.size_box.setRange(MIN_RADIUS, MAX_RADIUS)
        self.size_box.setValue(8)
        self.size_box.setSuffix(" px radius")
        self.size_box.setToolTip("Brush radius in image pixels ([ and ])")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(45)
        self.fill_button = QPushButton("Fill holes", self)
        self.copy_button = QPushButton("Copy to next slice (N)", self)
        form = QFormLayout(self)
        form.addRow("Mask label", self.label_box)
        form.addRow("Tool", modes)
        form.addRow("Size", self.size_box)
        form.addRow("Opacity", self.opacity_slider)
        row = QHBoxLayout()
        row.addWidget(self.fill_button)
        row.addWidget(self.copy_button)
        form.addRow(row)

        panel.session_changed.connect(self._session_changed)
        panel.labels_changed.connect(self.redraw)
        self.label_box.currentTextChanged.connect(lambda _t: self._reset_editor())
        self.mode_buttons.idToggled.connect(lambda _i, _on: self._mode_changed())
        self.size_box.valueChanged.connect(lambda _v: self.update_outline())
        self.opacity_slider.valueChanged.connect(lambda _v: self.redraw())
        self.fill_button.clicked.connect(lambda: self.fill_holes())
        self.copy_button.clicked.connect(lambda: self.copy_to_next())
        self._session_changed()

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """"off", "brush" or "eraser"."""
        return ("off", "brush", "eraser")[max(self.mode_buttons.checkedId(), 0)]

    def set_mode(self, mode: str) -> None:
        {"off": self.off_button, "brush": self.brush_button, "eraser": self.eraser_button}[mode].setChecked(True)

    @property
    def radius(self) -> int:
        return self.size_box.value()

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    def _session_changed(self) -> None:
        view = self.panel.view
        if view is not self._view:
            if self._view is not None:
                self._detach(self._view)
            self._view = view
            if view is not None:
                view.vb.addItem(self.overlay, ignoreBounds=True)
                view.vb.addItem(self.outline, ignoreBounds=True)
                view.viewport().installEventFilter(self)
                view.installEventFilter(self)
                view.slice_changed.connect(self._slice_changed)
        ls = self.panel.label_set
        current = self.label_box.currentText()
        self.label_box.blockSignals(True)
        self.label_box.clear()
        if ls is not None:
            self.label_box.addItems(list(ls.names))
            if current in ls.names:
                self.label_box.setCurrentText(current)
        self.label_box.blockSignals(False)
        self._reset_editor()

    def _detach(self, view: Any) -> None:
        try:
            view.vb.removeItem(self.overlay)
            view.vb.removeItem(self.outline)
            view.viewport().removeEventFilter(self)
            view.removeEventFilter(self)
            view.slice_changed.disconnect(self._slice_changed)
        except (RuntimeError, TypeError):
            pass

    def _reset_editor(self) -> None:
        self.editor = None
        self._editor_key = None
        self.redraw()

    def ensure_editor(self) -> MaskEditor | None:
        """The mask editor of the chosen label on the viewed series (made on first use)."""
        s, view = self.panel.session, self._view
        label = self.label_box.currentText()
        if s is None or view is None or view.volume is None or not label:
            return None
        vol = view.volume
        key = (id(s), vol.series_uid, label, vol.shape)
        if self.editor is None or self._editor_key != key:
            try:
                self.editor = s.mask_editor(label, tuple(vol.shape), slice_keys(vol))
            except ValueError as exc:
                self.panel.message.setText(f"Cannot paint on this series: {exc}")
                self.editor = None
                return None
            self._editor_key = key
        return self.editor

    def _mode_changed(self) -> None:
        view = self._view
        if self.mode != "off" and view is not None and view.state.plane != "acquired":
            view.set_plane("acquired")
        self.redraw()
        self.update_outline()

    def update_outline(self) -> None:
        """Draw the brush (or eraser) disc under the cursor: centre and radius in image pixels, on screen in
        display mm (so a 10 px brush on 0.7 mm pixels is a 7 mm circle, as painted)."""
        view = self._view
        rc = self._cursor_rc
        if view is None or rc is None or self.mode == "off" or view.volume is None or view.state.geometry is None:
            self.outline.setVisible(False)
            return
        r = self.radius + 0.5  # the dab covers whole pixels whose centres lie within the radius
        a = view.slice_to_view(rc[0] - r, rc[1] - r)
        b = view.slice_to_view(rc[0] + r, rc[1] + r)
        self.outline.setRect(QRectF(a, b).normalized())
        dashed = self.mode == "eraser"
        self.outline.setPen(pg.mkPen((255, 255, 255, 220), width=1.5, cosmetic=True,
                                     style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine))
        self.outline.setVisible(True)

    def _slice_changed(self, _i: int) -> None:
        self.redraw()

    # -- editing (all in image pixels of the current acquired slice) ----------------------------------------
    @property
    def z(self) -> int:
        return int(self._view.slice_index) if self._view is not None else 0

    def paint_at(self, row: float, col: float, erase: bool | None = None) -> bool:
        """Paint (or erase) one disc of the current radius at (row, col) of the current slice."""
        ed = self.ensure_editor()
        if ed is None:
            return False
        erase = self.mode == "eraser" if erase is None else erase
        changed = (ed.erase if erase else ed.paint)(self.z, (col, row), self.radius)
        self.redraw()
        return changed

    def begin_stroke(self, row: float, col: float) -> None:
        ed = self.ensure_editor()
        if ed is None:
            return
        ed.begin_stroke(self.z, erase=self.mode == "eraser")
        ed.stroke_to((col, row), self.radius)
        self._dragging = True
        self.redraw()

    def stroke_to(self, row: float, col: float) -> None:
        if self._dragging and self.editor is not None:
            self.editor.stroke_to((col, row), self.radius)
            self.redraw()

    def end_stroke(self) -> bool:
        self._dragging = False
        changed = self.editor.end_stroke() if self.editor is not None else False
        self.redraw()
        return changed

    def fill_at(self, row: float, col: float) -> bool:
        ed = self.ensure_editor()
        if ed is None:
            return False
        r, c = int(round(row)), int(round(col))
        if not (0 <= r < ed.mask.shape[1] and 0 <= c < ed.mask.shape[2]):
            return False
        changed = ed.fill(self.z, (r, c))
        self.redraw()
        return changed

    def fill_holes(self) -> bool:
        ed = self.ensure_editor()
        changed = ed.fill_holes(self.z) if ed is not None else False
        self.redraw()
        return changed

    def copy_to_next(self) -> bool:
        """Copy this slice's mask to the next slice and show that slice."""
        ed = self.ensure_editor()
        if ed is None:
            return False
        changed = ed.copy_to_next(self.z)
        if self.z + 1 < ed.mask.shape[0]:
            self._view.set_slice(self.z + 1)
        self.redraw()
        return changed

    def change_size(self, delta: int) -> None:
        self.size_box.setValue(self.size_box.value() + delta)
        self.update_outline()

    # -- drawing --------------------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Redraw the overlay of the current slice (display flips/turns applied like the image)."""
        view = self._view
        ed = self.editor if self.editor is not None else (self.ensure_editor() if self.panel.session else None)
        if view is None or ed is None or view.state.plane != "acquired" or view.volume is None:
            self.overlay.clear()
            self.overlay.setVisible(False)
            return
        z = self.z
        if not 0 <= z < ed.mask.shape[0]:
            self.overlay.clear()
            return
        ls = self.panel.label_set
        rgb = ls.by_name(ed.label).rgb if ls is not None and ed.label in ls.names else (255, 0, 0)
        rgba = mask_rgba(view.state.transform.apply(ed.mask[z]), rgb, self.opacity)
        self.overlay.setImage(rgba, autoLevels=False)
        self.overlay.setRect(view._display_rect)  # the image item's rect: display mm
        self.overlay.setVisible(True)

    # -- events on the viewport -----------------------------------------------------------------------------
    def _rc(self, pos: QPointF) -> tuple[float, float]:
        view = self._view
        row, col = view.scene_to_slice(view.mapToScene(pos.toPoint()))
        return float(row), float(col)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 (Qt override)
        view = self._view
        if view is None or view.volume is None:
            return False
        t = ev.type()
        if t == QEvent.Type.KeyPress and obj is view:
            return self._key(ev)
        if self.mode == "off" or obj is not view.viewport():
            return False
        if t == QEvent.Type.MouseButtonPress and isinstance(ev, QMouseEvent):
            if ev.button() == Qt.MouseButton.LeftButton:
                self.begin_stroke(*self._rc(ev.position()))
                return True
        elif t == QEvent.Type.Leave:
            self._cursor_rc = None
            self.update_outline()
        elif t == QEvent.Type.MouseMove and isinstance(ev, QMouseEvent):
            self._cursor_rc = self._rc(ev.position())
            self.update_outline()
            if self._dragging:
                self.stroke_to(*self._cursor_rc)
                return True
        elif t == QEvent.Type.MouseButtonRelease and isinstance(ev, QMouseEvent):
            if self._dragging and ev.button() == Qt.MouseButton.LeftButton:
                self.end_stroke()
                return True
        return False

    def _key(self, ev: Any) -> bool:
        key, mods = ev.key(), ev.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if ctrl and key == Qt.Key.Key_Z and (self.mode != "off" or self.panel.labeling):
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.panel.redo()
            else:
                self.panel.undo()
            self.redraw()
            return True
        if self.mode == "off" or ctrl:
            return False
        if key == Qt.Key.Key_BracketLeft:
            self.change_size(-1)
        elif key == Qt.Key.Key_BracketRight:
            self.change_size(1)
        elif key == Qt.Key.Key_F and self._cursor_rc is not None:
            self.fill_at(*self._cursor_rc)
        elif key == Qt.Key.Key_N:
            self.copy_to_next()
        elif key == Qt.Key.Key_Escape and self._dragging and self.editor is not None:
            self.editor.cancel_stroke()
            self._dragging = False
            self.redraw()
        else:
            return False
        return True


__all__ = ["BrushControls", "mask_rgba"]
