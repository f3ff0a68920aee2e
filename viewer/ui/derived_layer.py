"""DICOM SEG and SR objects drawn over the series they reference, in every viewport showing it.

The workspace keeps the derived objects the reader opened (:class:`~viewer.core.derived.DerivedOverlay`);
a :class:`DerivedLayer` per slice view draws those that apply to its series (referenced series and
images, same frame of reference) on the acquired slice shown: SEG segments as coloured, semi-transparent
masks with their labels in a legend, SR regions as outlines.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QObject, QPointF, Qt
from PySide6.QtGui import QPainterPath
from PySide6.QtWidgets import QGraphicsPathItem, QLabel

from viewer.core.derived import DerivedOverlay, image_ref
from viewer.state.workspace import Workspace
from viewer.ui.viewport import SliceViewport

OPACITY = 0.45


class DerivedLayer(QObject):
    """Draws the workspace's SEG/SR objects that belong to ``view``'s series."""

    def __init__(self, view: SliceViewport, workspace: Workspace) -> None:
        super().__init__(view)
        self.view = view
        self.workspace = workspace
        self.mask_item = pg.ImageItem(axisOrder="row-major")
        self.mask_item.setZValue(4)
        self.mask_item.setVisible(False)
        view.vb.addItem(self.mask_item, ignoreBounds=True)
        self.path_item = QGraphicsPathItem()
        self.path_item.setPen(pg.mkPen((255, 200, 0), width=2, cosmetic=True))
        self.path_item.setZValue(8)
        view.vb.addItem(self.path_item, ignoreBounds=True)
        self.legend = QLabel(view)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setStyleSheet("QLabel { background: rgba(0,0,0,170); color: #ebebeb; padding: 3px 5px; "
                                  "border-radius: 3px; }")
        self.legend.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.legend.hide()
        self.drawn: list[DerivedOverlay] = []  # the objects drawn on the slice now shown (tests read it)
        self._unsub = [workspace.subscribe(self._changed), view.state.subscribe(self._changed),
                       view.state.image.subscribe(self._changed)]

    def _changed(self, changes: frozenset[str]) -> None:
        if changes & {"derived", "slice", "view", "plane", "volume"}:
            self.sync()

    def overlays(self) -> list[DerivedOverlay]:
        vol = self.view.volume
        if vol is None:
            return []
        return [o for o in self.workspace.derived if o.applies_to(vol.info)]

    def sync(self) -> None:
        if not shiboken6.isValid(self.view):
            return
        st = self.view.state
        vol = st.volume
        ref = image_ref(vol.info, st.slice_index) if vol is not None and st.plane == "acquired" else None
        self.drawn = []
        rgba: np.ndarray | None = None
        path = QPainterPath()
        legend: list[str] = []
        if ref is not None and st.geometry is not None:
            rows, cols = st.geometry.shape
            for ov in self.overlays():
                shown = False
                for seg in ov.segments:
                    mask = seg.masks.get(ref)
                    if mask is None or mask.shape != (rows, cols):
                        continue
                    if rgba is None:
                        rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
                    rgba[mask] = (*seg.rgb, int(255 * OPACITY))
                    r, g, b = seg.rgb
                    legend.append(f"<span style='color:rgb({r},{g},{b})'>■</span> {html.escape(seg.label)}")
                    shown = True
                for region in ov.regions:
                    if region.image != ref:
                        continue
                    self._outline(path, region.kind, region.points)
                    shown = True
                if shown:
                    self.drawn.append(ov)
        if rgba is not None:
            self.mask_item.setImage(np.ascontiguousarray(st.transform.apply(rgba)), autoLevels=False, levels=(0, 255))
            self.mask_item.setRect(self.view._display_rect)
            self.mask_item.setVisible(True)
        else:
            self.mask_item.setVisible(False)
        self.path_item.setPath(path)
        if self.drawn:
            names = ", ".join(f"{o.kind} {html.escape(o.description)}" for o in self.drawn)
            self.legend.setText(f"<b>{names}</b><br>" + "<br>".join(dict.fromkeys(legend)))
            self.legend.adjustSize()
            self.legend.move(max(6, self.view.viewport().width() - self.legend.width() - 6), 60)
            self.legend.show()
        else:
            self.legend.hide()

    def _outline(self, path: QPainterPath, kind: str, points: tuple[tuple[float, float], ...]) -> None:
        """Add an SR region, given as (column, row) pixel points, to ``path`` in view coordinates."""
        pts = [self.view.slice_to_view(row, col) for col, row in points]
        if kind == "ellipse" and len(pts) == 2:
            path.addEllipse(_rect(pts[0], pts[1]))
        elif kind == "box" and len(pts) == 2:
            path.addRect(_rect(pts[0], pts[1]))
        elif kind == "point" and pts:
            path.addEllipse(pts[0], 2.0, 2.0)
        elif pts:
            path.moveTo(pts[0])
            for p in pts[1:]:
                path.lineTo(p)
            if kind == "polygon":
                path.closeSubpath()

    def detach(self) -> None:
        for u in self._unsub:
            u()
        self._unsub = []


def _rect(a: QPointF, b: QPointF) -> pg.QtCore.QRectF:
    return pg.QtCore.QRectF(a, b).normalized()
