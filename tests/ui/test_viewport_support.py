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


def load_real(folder) -> "Volume":  # noqa: F821 - quoted to keep the import lazy
    """``viewer.io.load_series`` when it exists; until then a minimal pydicom reader (plain stacks only).

    The fallback sorts by position along the slice normal and builds the LPS affine from Image
    Orientation/Position (Patient) and Pixel Spacing, which is all these geometry tests need.
    """
    from pathlib import Path

    from viewer.core.volume import Volume

    try:
        from viewer.io import load_series  # type: ignore[attr-defined]
    except ImportError:
        load_series = None
    if load_series is not None:
        return load_series(str(folder))
    import pydicom

    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))
    dss = [pydicom.dcmread(f) for f in files]
    dss = [d for d in dss if "PixelData" in d]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    dss.sort(key=lambda d: float(np.array(d.ImagePositionPatient, dtype=float) @ normal))
    ps = [float(v) for v in dss[0].PixelSpacing]
    aff = np.eye(4)
    aff[:3, 0] = row * ps[1]
    aff[:3, 1] = col * ps[0]
    p0 = np.array(dss[0].ImagePositionPatient, dtype=float)
    aff[:3, 2] = (np.array(dss[1].ImagePositionPatient, dtype=float) - p0) if len(dss) > 1 else normal
    aff[:3, 3] = p0
    arr = np.stack([d.pixel_array * float(d.get("RescaleSlope", 1)) + float(d.get("RescaleIntercept", 0)) for d in dss])
    d0 = dss[0]
    md = {"photometric_interpretation": str(d0.PhotometricInterpretation), "patient_name": str(d0.get("PatientName", ""))}
    if "WindowCenter" in d0 and "WindowWidth" in d0:
        wc, ww = d0.WindowCenter, d0.WindowWidth
        wc = wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc
        ww = ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww
        md["window"] = [float(wc), float(ww)]
    return Volume(np.round(arr).astype(np.int16), aff, modality=str(d0.Modality), metadata=md)
