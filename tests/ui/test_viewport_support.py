"""Helpers for driving SliceViewport with real mouse events (imported by the viewport/MPR/measure tests)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from viewer.ui.viewport import SliceViewport

NO_MOD = Qt.KeyboardModifier.NoModifier
LEFT = Qt.MouseButton.LeftButton


def widget_pos(vp: SliceViewport, row: float, col: float) -> QPointF:
    """Viewport-widget pixel position of 2D slice (row, col)."""
    scene = vp.vb.mapViewToScene(vp.slice_to_view(row, col))
    return QPointF(vp.mapFromScene(scene))


def _mouse(vp: SliceViewport, etype: QEvent.Type, pos: QPointF, button, buttons, mods) -> None:
    # pyqtgraph drops mouse moves closer than 1/mouseRateLimit s apart; synthetic events come faster.
    pg.setConfigOption("mouseRateLimit", -1)
    glob = QPointF(vp.viewport().mapToGlobal(pos.toPoint()))
    ev = QMouseEvent(etype, pos, glob, button, buttons, mods)
    QApplication.sendEvent(vp.viewport(), ev)


def drag(vp: SliceViewport, p0: QPointF, p1: QPointF, button=LEFT, mods=NO_MOD, steps: int = 8) -> None:
    """Press at ``p0``, move in ``steps`` to ``p1``, release (widget pixel positions)."""
    _mouse(vp, QEvent.Type.MouseButtonPress, p0, button, button, mods)
    for t in np.linspace(0.0, 1.0, steps + 1)[1:]:
        p = QPointF(p0.x() + (p1.x() - p0.x()) * t, p0.y() + (p1.y() - p0.y()) * t)
        _mouse(vp, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button, mods)
    _mouse(vp, QEvent.Type.MouseButtonRelease, p1, button, Qt.MouseButton.NoButton, mods)
    QApplication.processEvents()


def click(vp: SliceViewport, p: QPointF, button=LEFT, mods=NO_MOD) -> None:
    _mouse(vp, QEvent.Type.MouseButtonPress, p, button, button, mods)
    _mouse(vp, QEvent.Type.MouseButtonRelease, p, button, Qt.MouseButton.NoButton, mods)
    QApplication.processEvents()


def hover(vp: SliceViewport, p: QPointF) -> None:
    _mouse(vp, QEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, NO_MOD)


def wheel(vp: SliceViewport, notches: int) -> None:
    """Turn the wheel by ``notches`` (positive = away from the user = up)."""
    pos = QPointF(vp.viewport().width() / 2, vp.viewport().height() / 2)
    glob = QPointF(vp.viewport().mapToGlobal(pos.toPoint()))
    ev = QWheelEvent(pos, glob, QPoint(0, 0), QPoint(0, 120 * notches), Qt.MouseButton.NoButton, NO_MOD,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp.viewport(), ev)
    QApplication.processEvents()


def load_real(folder):
    """A real series through the project's loader (``viewer.io.load_series``)."""
    from viewer.io import load_series

    return load_series(str(folder))
