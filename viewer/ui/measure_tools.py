"""Drawing, editing and deleting measurements on a slice viewport.

The measurements live in ``ImageState.measurements`` (plain dataclasses, LPS mm); this layer only
mirrors the ones that belong to the viewport's current plane and slice as pyqtgraph ROI items with
draggable handles. Creating: pick a tool (keys D, A, Q, O) and left-drag; an angle is a drag for the
first arm (end point to vertex), then a click for the second arm's end. Editing: drag a handle or the
shape. Deleting: click a measurement to select it, then Delete or Backspace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QTimer
from PySide6.QtGui import QColor

from viewer.state.measurements import Measurement

if TYPE_CHECKING:
    from viewer.ui.viewport import SliceViewport

_PEN = pg.mkPen(QColor(255, 220, 0), width=2)
_SELECTED_PEN = pg.mkPen(QColor(0, 255, 140), width=2)
_LABEL = QColor(255, 230, 80)


class MeasureLayer:
    """ROI items for the measurements on a viewport's current slice (see the module docstring)."""

    def __init__(self, viewport: SliceViewport) -> None:
        self.vp = viewport
        self.items: dict[int, tuple[pg.ROI, pg.TextItem]] = {}
        self.selected: Measurement | None = None
        self._preview: pg.GraphicsObject | None = None
        self._pending_angle: list[QPointF] | None = None
        self._sync_scheduled = False

    # -- state -> items -----------------------------------------------------------------------------
    def _on_this_slice(self, m: Measurement) -> bool:
        """Drawn here when every point lies on the slice shown (within half a slice): a measurement made on
        the acquired slices shows on MPR's parallel plane through them and back, not only where drawn."""
        st = self.vp.state
        if m.plane == st.plane:
            return m.slice_index == st.slice_index
        try:
            return all(abs(st.lps_to_point(np.asarray(p))[0] - st.slice_index) <= 0.5 for p in m.points)
        except RuntimeError:
            return False

    def sync(self) -> None:
        """Rebuild the ROI items from state (cheap: a handful of items per slice)."""
        vb = self.vp.vb
        for roi, label in self.items.values():
            vb.removeItem(roi)
            vb.removeItem(label)
        self.items.clear()
        st = self.vp.state
        if st.geometry is None:
            return
        if self.selected is not None and self.selected not in st.image.measurements:
            self.selected = None
        for m in st.image.measurements:
            if self._on_this_slice(m):
                self._add_item(m)

    def _view_points(self, m: Measurement) -> list[QPointF]:
        st = self.vp.state
        out = []
        for p in m.points:
            _, row, col = st.lps_to_point(np.asarray(p))
            out.append(self.vp.slice_to_view(row, col))
        return out

    def _add_item(self, m: Measurement) -> None:
        pts = self._view_points(m)
        pen = _SELECTED_PEN if m is self.selected else _PEN
        roi: pg.ROI
        if m.kind == "distance":
            roi = pg.LineSegmentROI([(p.x(), p.y()) for p in pts], pen=pen)
        elif m.kind == "angle":
            roi = pg.PolyLineROI([(p.x(), p.y()) for p in pts], closed=False, pen=pen)
        else:
            rect = QRectF(pts[0], pts[1]).normalized()
            cls = pg.RectROI if m.kind == "rect" else pg.EllipseROI
            roi = cls((rect.x(), rect.y()), (max(rect.width(), 1e-3), max(rect.height(), 1e-3)), pen=pen)
            for h in list(roi.getHandles()):
                if getattr(h, "typ", "") in ("r", "sr"):  # no rotation: ROI stays aligned to the pixel grid
                    roi.removeHandle(h)
            if not [h for h in roi.getHandles()]:
                roi.addScaleHandle([1, 1], [0, 0])
            roi.addScaleHandle([0, 0], [1, 1])
        roi.setZValue(10)
        roi.setAcceptedMouseButtons(pg.QtCore.Qt.MouseButton.LeftButton)
        roi.sigClicked.connect(lambda _roi, _ev, m=m: self.select(m))
        roi.sigRegionChangeFinished.connect(lambda r, m=m: self._item_edited(m, r))
        label = pg.TextItem(m.summary(), color=_LABEL, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 140))
        anchor = max(pts, key=lambda p: p.x())
        label.setPos(anchor)
        label.setZValue(11)
        self.vp.vb.addItem(roi)
        self.vp.vb.addItem(label)
        self.items[m.id] = (roi, label)

    def _item_points(self, m: Measurement, roi: pg.ROI) -> list[QPointF]:
        if m.kind in ("distance", "angle"):
            return [roi.mapToParent(h.pos()) for h in roi.getHandles()]
        pos, size = roi.pos(), roi.size()
        return [QPointF(pos.x(), pos.y()), QPointF(pos.x() + size.x(), pos.y() + size.y())]

    def _to_lps(self, p: QPointF, slice_index: int) -> tuple[float, float, float]:
        row, col = self.vp.view_to_slice(p)
        v = self.vp.state.point_to_lps(row, col, slice_index)
        return float(v[0]), float(v[1]), float(v[2])

    def _item_edited(self, m: Measurement, roi: pg.ROI) -> None:
        points = [self._to_lps(p, m.slice_index) for p in self._item_points(m, roi)]
        # Defer: updating state rebuilds the items, and the ROI that emitted this must outlive its signal.
        QTimer.singleShot(0, lambda: self.vp.state.image.update_measurement(m, points))

    def select(self, m: Measurement | None) -> None:
        self.selected = m
        for mid, (roi, _label) in self.items.items():
            roi.setPen(_SELECTED_PEN if m is not None and mid == m.id else _PEN)

    def delete_selected(self) -> None:
        if self.selected is not None:
            m, self.selected = self.selected, None
            self.vp.state.image.remove_measurement(m)

    # -- creating -----------------------------------------------------------------------------------
    def cancel(self) -> None:
        self._pending_angle = None
        self._clear_preview()

    def _clear_preview(self) -> None:
        if self._preview is not None:
            self.vp.vb.removeItem(self._preview)
            self._preview = None

    def _show_preview(self, kind: str, pts: list[QPointF]) -> None:
        self._clear_preview()
        if kind in ("rect", "ellipse"):
            rect = QRectF(pts[0], pts[-1]).normalized()
            item: Any = pg.QtWidgets.QGraphicsRectItem(rect) if kind == "rect" else pg.QtWidgets.QGraphicsEllipseItem(rect)
            item.setPen(_PEN)
        else:
            item = pg.PlotCurveItem([p.x() for p in pts], [p.y() for p in pts], pen=_PEN)
        item.setZValue(12)
        self.vp.vb.addItem(item, ignoreBounds=True)
        self._preview = item

    def drag(self, ev: Any, kind: str) -> None:
        vb = self.vp.vb
        start = vb.mapSceneToView(ev.buttonDownScenePos())
        here = vb.mapSceneToView(ev.scenePos())
        if kind == "angle":
            # First arm: from its far end (press) to the vertex (release); a click then ends arm two.
            pts = [start, here]
        else:
            pts = [start, here]
        self._show_preview(kind, pts)
        if not ev.isFinish():
            return
        self._clear_preview()
        if kind == "angle":
            self._pending_angle = [start, here]
            return
        self.create(kind, pts)

    def click(self, ev: Any) -> bool:
        """Finish a pending angle with a click; True when the click was used."""
        if self._pending_angle is None or self.vp.state.tool != "angle":
            return False
        pts = [*self._pending_angle, self.vp.vb.mapSceneToView(ev.scenePos())]
        self._pending_angle = None
        self._clear_preview()
        self.create("angle", pts)
        return True

    def hover(self, scene_pos: QPointF) -> None:
        if self._pending_angle is not None:
            self._show_preview("angle", [*self._pending_angle, self.vp.vb.mapSceneToView(scene_pos)])

    def create(self, kind: str, view_points: list[QPointF]) -> Measurement:
        """Add a measurement of ``kind`` from points in view coordinates on the current slice."""
        st = self.vp.state
        points = [self._to_lps(p, st.slice_index) for p in view_points]
        m = Measurement(kind=kind, points=points, plane=st.plane, slice_index=st.slice_index)
        st.image.add_measurement(m)
        self.select(m)
        return m
