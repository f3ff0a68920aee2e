"""The slice viewport: one plane of a volume, windowed, with overlays, tools and measurements.

Public interface (what the shell builds on)::

    vp = SliceViewport()                    # or SliceViewport(ViewState(image_state, plane="coronal"))
    vp.set_volume(volume, slice_index=None) # viewer.core.volume.Volume; opens with the file's window
    vp.set_slice(k); vp.set_window(center, width); vp.set_plane("coronal")
    vp.volume, vp.slice_index, vp.center, vp.width_hu
    vp.state                                # ViewState: slice, zoom, pan, flips, tool; vp.state.image:
                                            # ImageState (window, invert, crosshair, measurements)
    vp.run_action("preset:2")               # any key action by name (see viewer.ui.bindings)
    vp.show_message("cannot load: ...")     # error text centred in the view; clear_message() removes it
    vp.measurements(); vp.remove_measurement(m)   # viewer.state.Measurement dataclasses
    vp.displayed_image()                    # the uint8 (rows, cols[, 3]) array on screen, after flips
    vp.overlay()                            # the overlay texts and orientation letters as shown
    signals: slice_changed(int), window_changed(float, float) (center, width in modality units),
             cursor_moved(object) (overlay.Cursor: lps mm, row, col, value; None on leave),
             measurements_changed()

Mouse and keys come from ``viewer.ui.bindings.Bindings`` (one rebindable table). The image is drawn by a
pyqtgraph ``ImageItem`` fed windowed 8-bit grey (never raw int16: that is pyqtgraph's slow path) through
an opaque RGB32 buffer (Qt converts Grayscale8 on every paint), placed in millimetres so that non-square
pixels and reformats keep their true proportions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter

from viewer.core.volume import Volume
from viewer.core.windowing import window_to_uint8
from viewer.state.image import ImageState
from viewer.state.measurements import Measurement
from viewer.state.view import ViewState
from viewer.ui import bindings as bnd
from viewer.ui.bindings import Bindings
from viewer.ui.overlay import Cursor, OverlayContent, overlay_text, paint_overlay

pg.setConfigOptions(imageAxisOrder="row-major")


_GREY32 = (np.arange(256, dtype=np.uint32) * np.uint32(0x010101)) | np.uint32(0xFF000000)


class WindowLut:
    """Windowing of integer slices through a lookup table, exactly equal to ``window_to_uint8``.

    One table entry per possible stored value (65,536 for 16-bit) is built once per window, and a
    slice is then one ``np.take``: several times faster than the float pipeline per redraw, and it
    works on the strided views that reformats are. ``argb`` gives the same grey levels as opaque
    32-bit RGB pixels (0xFFgggggg), the format Qt draws without converting.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._lut: np.ndarray | None = None
        self._lut32: np.ndarray | None = None

    def _table(self, dt: np.dtype, center: float, width: float, invert: bool) -> None:
        key = (dt.str, center, width, invert)
        if key != self._key or self._lut is None:
            unsigned = np.dtype(dt.str.replace("i", "u"))
            codes = np.arange(np.iinfo(unsigned).max + 1, dtype=unsigned).view(dt)
            self._lut = window_to_uint8(codes, center, width, invert)
            self._lut32 = _GREY32[self._lut]
            self._key = key

    def __call__(self, values: np.ndarray, center: float, width: float, invert: bool) -> np.ndarray:
        """Grey levels 0..255 (uint8) of ``values`` in modality units."""
        dt = values.dtype
        if dt not in (np.int16, np.uint16, np.uint8, np.int8):
            return window_to_uint8(values, center, width, invert)
        self._table(dt, center, width, invert)
        assert self._lut is not None
        return np.take(self._lut, values.view(np.dtype(dt.str.replace("i", "u"))))

    def argb(self, values: np.ndarray, center: float, width: float, invert: bool) -> np.ndarray:
        """The windowed grey of ``values`` as a C-contiguous uint32 (rows, cols) array of 0xFFgggggg."""
        dt = values.dtype
        if dt not in (np.int16, np.uint16, np.uint8, np.int8):
            return np.take(_GREY32, window_to_uint8(values, center, width, invert))
        self._table(dt, center, width, invert)
        assert self._lut32 is not None
        return np.take(self._lut32, values.view(np.dtype(dt.str.replace("i", "u"))))


def grey_of_argb(argb: np.ndarray) -> np.ndarray:
    """The grey uint8 (rows, cols) view of a 0xFFgggggg array (byte 1 is grey on either endianness)."""
    return argb.view(np.uint8).reshape(*argb.shape, 4)[..., 1]


def rgb_to_argb(rgb: np.ndarray) -> np.ndarray:
    """Opaque 0xFFrrggbb uint32 of a uint8 (rows, cols, 3) image."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return (r << 16) | (g << 8) | b | np.uint32(0xFF000000)


def colour_to_uint8(values: np.ndarray, invert: bool) -> np.ndarray:
    """An RGB slice as uint8 (scaled to its own range when stored wider), inverted on request."""
    if values.dtype != np.uint8:
        lo, hi = float(values.min()), float(values.max())
        values = ((values.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6)) + 0.5).astype(np.uint8)
    return 255 - values if invert else values


SMOOTH_FROM = 2.0


class SliceImageItem(pg.ImageItem):
    """An ImageItem drawn from an opaque RGB32 buffer the viewport fills itself.

    ``image`` still holds the displayed uint8 grey (or RGB) array, but the QImage wraps the 32-bit
    buffer: Qt converts a Grayscale8 QImage to 32 bits on every paint, which doubled the redraw time
    of a 512^2 slice; RGB32 it draws as is.
    """

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self._argb: np.ndarray | None = None
        # Bilinear interpolation when the image is magnified on screen, from SMOOTH_FROM screen pixels per
        # image pixel (where nearest-neighbour blocks show); below that the image is drawn as it is
        # (nearest), which is also the fast path of every redraw at fit size (benchmarks/bench_redraw.py).
        self.smooth = True

    def paint(self, p: QPainter, *args: Any) -> None:
        if self.smooth:
            t = p.transform()
            scale = max(t.m11() ** 2 + t.m12() ** 2, t.m21() ** 2 + t.m22() ** 2) ** 0.5
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale >= SMOOTH_FROM)
        super().paint(p, *args)

    def set_slice_image(self, shown: np.ndarray, argb: np.ndarray) -> None:
        self._argb = np.ascontiguousarray(argb, dtype=np.uint32)
        self.setImage(shown, autoLevels=False, levels=None)

    def render(self) -> None:
        if self._argb is None:
            super().render()
            return
        h, w = self._argb.shape
        # The QImage borrows the array's memory: keep that array alive as long as the QImage.
        self._qimage_buffer = self._argb
        self.qimage = QImage(self._qimage_buffer.data, w, h, 4 * w, QImage.Format.Format_RGB32)
        self._renderRequired = False
        self._unrenderable = False


class _ViewBox(pg.ViewBox):
    """A ViewBox whose mouse gestures go to the viewport's binding table instead of pyqtgraph's."""

    def __init__(self, viewport: SliceViewport) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False, defaultPadding=0.0)
        self.setMouseEnabled(False, False)
        self._viewport = viewport

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 (Qt override)
        self._viewport._drag(ev)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802
        self._viewport._click(ev)

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802
        self._viewport._wheel(ev)


class SliceViewport(pg.GraphicsView):
    """One plane of a volume with window/level, zoom/pan, flips/rotation, overlays and measurements."""

    slice_changed = Signal(int)
    window_changed = Signal(float, float)
    cursor_moved = Signal(object)
    measurements_changed = Signal()

    def __init__(
        self,
        state: ViewState | None = None,
        parent: Any = None,
        bindings: Bindings | None = None,
        show_crosshair: bool = False,
    ) -> None:
        super().__init__(parent, background="k")
        self.state = state if state is not None else ViewState(ImageState())
        self.bindings = bindings if bindings is not None else Bindings.default()
        self.vb = _ViewBox(self)
        self.setCentralItem(self.vb)
        self.image_item = SliceImageItem()
        self.vb.addItem(self.image_item)
        pen = pg.mkPen(QColor(90, 200, 255, 200), width=1, style=Qt.PenStyle.DashLine)
        self._hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        self._vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        for line in (self._hline, self._vline):
            line.setZValue(20)
            line.setVisible(False)
            self.vb.addItem(line, ignoreBounds=True)
        self.show_crosshair = show_crosshair
        self._lut = WindowLut()
        self._message = ""
        self._cursor: Cursor | None = None
        # Where the mouse rests (scene coordinates): the readout follows scrolling, cine, window and
        # volume changes under a still mouse, not only mouse moves.
        self._hover: QPointF | None = None
        self._overlay = OverlayContent()
        self._drag_state: dict[str, Any] = {}
        self._display_rect = QRectF(0, 0, 1, 1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(120, 120)
        # Imported here: measure_tools needs this module's class for its type hints only.
        from viewer.ui.measure_tools import MeasureLayer

        self.measure_layer = MeasureLayer(self)
        from viewer.ui.display_filter import DisplayFilterHook

        self.display_filter = DisplayFilterHook(self)  # off by default; the toolbar's Filter menu
        self._unsubscribe = [self.state.subscribe(self._view_changed), self.state.image.subscribe(self._image_changed)]
        self.vb.sigResized.connect(self._apply_range)
        self._full_update()

    # -- public API ---------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, slice_index: int | None = None) -> None:
        """Show ``volume`` (None clears the view) at ``slice_index`` (default: the plane's start).

        Removes any message. The window is the file's (VOI LUT), else the modality default.
        """
        self._message = ""
        self.state.image.set_volume(volume)
        if slice_index is not None:
            self.state.set_slice(slice_index)

    @property
    def volume(self) -> Volume | None:
        return self.state.image.volume

    @property
    def slice_index(self) -> int:
        return self.state.slice_index

    @property
    def center(self) -> float:
        return self.state.image.center

    @property
    def width_hu(self) -> float:
        """The window width in modality units (``width`` is QWidget's)."""
        return self.state.image.width

    def set_slice(self, index: int) -> None:
        """Go to slice ``index`` of the current plane (clamped)."""
        self.state.set_slice(index)

    def set_window(self, center: float, width: float) -> None:
        """Set the window in modality units (HU for CT)."""
        self.state.image.set_window(center, width)

    def set_smooth(self, on: bool) -> None:
        """Bilinear smoothing of the magnified image (a display option; the pixels in state are untouched)."""
        self.image_item.smooth = bool(on)
        self.viewport().update()

    def set_plane(self, plane: str) -> None:
        """Show "acquired", "axial", "coronal" or "sagittal"."""
        self.state.set_plane(plane)

    def measurements(self) -> list[Measurement]:
        """The measurements of this volume (``viewer.state.Measurement``), in drawing order."""
        return list(self.state.image.measurements)

    def remove_measurement(self, m: Measurement) -> None:
        self.state.image.remove_measurement(m)

    def current_image(self) -> np.ndarray | None:
        """Alias of ``displayed_image`` (the shell's name)."""
        return self.displayed_image()

    def show_message(self, text: str) -> None:
        """Show ``text`` (an error, "Loading...") centred over the view until ``clear_message``."""
        self._message = str(text)
        self._refresh_overlay()

    def clear_message(self) -> None:
        self.show_message("")

    def displayed_image(self) -> np.ndarray | None:
        """The uint8 array the image item draws (rows down, cols right, after flips/rotation)."""
        image: np.ndarray | None = self.image_item.image
        return image

    def overlay(self) -> OverlayContent:
        """The overlay texts and letters as currently shown."""
        return self._overlay

    def scene_to_slice(self, scene_pos: QPointF) -> tuple[float, float]:
        """Continuous 2D slice (row, col) under a scene position."""
        p = self.vb.mapSceneToView(scene_pos)
        return self.view_to_slice(p)

    def view_to_slice(self, p: QPointF) -> tuple[float, float]:
        """Continuous 2D slice (row, col) of a point in view (display mm) coordinates."""
        g = self.state.geometry
        if g is None:
            return 0.0, 0.0
        dx, dy = self._display_spacing()
        return self.state.transform.to_source(p.y() / dy - 0.5, p.x() / dx - 0.5, g.shape)

    def slice_to_view(self, row: float, col: float) -> QPointF:
        """The view (display mm) position of continuous 2D slice (row, col)."""
        g = self.state.geometry
        if g is None:
            return QPointF(0, 0)
        dx, dy = self._display_spacing()
        r, c = self.state.transform.to_display(row, col, g.shape)
        return QPointF((c + 0.5) * dx, (r + 0.5) * dy)

    def mm_per_pixel(self) -> float | None:
        """Screen scale: millimetres per viewport pixel (None when nothing is shown)."""
        if self.state.geometry is None:
            return None
        (_x0, _x1), (y0, y1) = self.vb.viewRange()
        h = self.vb.height()
        return (y1 - y0) / h if h > 0 else None

    # -- state -> widget ----------------------------------------------------------------------------
    def _display_spacing(self) -> tuple[float, float]:
        g = self.state.geometry
        assert g is not None
        return (g.row_mm, g.col_mm) if self.state.transform.rotation % 2 else (g.col_mm, g.row_mm)

    def _view_changed(self, changes: frozenset[str]) -> None:
        if not shiboken6.isValid(self):  # deleted without close(): state may outlive the widget
            return
        if changes & {"slice", "view", "plane"}:
            self._render_image()
        if changes & {"view", "plane"}:
            self._apply_range()
        if "slice" in changes:
            self.slice_changed.emit(self.state.slice_index)
        self.measure_layer.sync()
        self._update_crosshair()
        if self._hover is not None and changes & {"slice", "view", "plane"}:
            self._update_cursor(self._hover, hovering=False)  # refreshes the overlay too
        else:
            self._refresh_overlay()

    def _image_changed(self, changes: frozenset[str]) -> None:
        if not shiboken6.isValid(self):
            return
        if "volume" in changes:
            # The view state resets itself on "volume" (it subscribed first) and triggers _view_changed.
            self._cursor = None
        if changes & {"window", "invert", "volume", "pixels"}:
            self._render_image()
            self.window_changed.emit(self.state.image.center, self.state.image.width)
        if "measurements" in changes:
            self.measure_layer.sync()
            self.measurements_changed.emit()
        if "crosshair" in changes:
            self._update_crosshair()
        if self._hover is not None and changes & {"volume", "window", "invert"}:
            self._update_cursor(self._hover, hovering=False)
        else:
            self._refresh_overlay()

    def _full_update(self) -> None:
        self._render_image()
        self._apply_range()
        self.measure_layer.sync()
        self._update_crosshair()
        self._refresh_overlay()

    def _render_image(self) -> None:
        st = self.state
        arr = st.slice_array()
        if arr is None:
            self.image_item.clear()
            return
        arr = self.display_filter.shown(arr)
        img = st.image
        if arr.ndim == 3:
            out = colour_to_uint8(st.transform.apply(arr), img.invert)
            argb = rgb_to_argb(out)
        else:
            # One table lookup from stored values to screen pixels (flips and turns are free views).
            argb = self._lut.argb(st.transform.apply(arr), img.center, img.width, img.invert)
            out = grey_of_argb(argb)
        self.image_item.set_slice_image(out, argb)
        dx, dy = self._display_spacing()
        rect = QRectF(0.0, 0.0, out.shape[1] * dx, out.shape[0] * dy)
        if rect != self._display_rect:
            self._display_rect = rect
            self.image_item.setRect(rect)
            self._apply_range()
        else:
            self.image_item.setRect(rect)

    def _apply_range(self) -> None:
        if self.state.geometry is None:
            return
        rect = self._display_rect
        zoom = self.state.zoom
        w, h = rect.width() / zoom, rect.height() / zoom
        cx = rect.center().x() + self.state.pan[0]
        cy = rect.center().y() + self.state.pan[1]
        self.vb.setRange(QRectF(cx - w / 2, cy - h / 2, w, h), padding=0.0, update=True)
        self._refresh_overlay()

    def _update_crosshair(self) -> None:
        point = self.state.image.crosshair
        visible = bool(self.show_crosshair and point is not None and self.state.geometry is not None)
        self._hline.setVisible(visible)
        self._vline.setVisible(visible)
        if visible:
            _, row, col = self.state.lps_to_point(point)  # type: ignore[arg-type]
            p = self.slice_to_view(row, col)
            self._hline.setPos(p.y())
            self._vline.setPos(p.x())

    def refresh_display(self) -> None:
        """Draw the slice and corner text again (a display filter was chosen or its result arrived)."""
        self._render_image()
        self._refresh_overlay()

    def _refresh_overlay(self) -> None:
        self._overlay = overlay_text(self.state, self._cursor)
        if self.display_filter.filter is not None:
            self._overlay.bottom_left.append(self.display_filter.label)
        self._overlay.message = self._message
        self.viewport().update()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 (Qt override)
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        paint_overlay(painter, QRectF(self.viewport().rect()), self._overlay, self.mm_per_pixel())
        painter.restore()

    # -- widget -> state ----------------------------------------------------------------------------
    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802
        action = self.bindings.key_action(ev.key(), ev.modifiers())
        if action is None or not self.run_action(action):
            super().keyPressEvent(ev)
            return
        ev.accept()

    def run_action(self, action: str) -> bool:
        """Perform a key action by name ("slice:+1", "preset:3", "invert", ...); False if unknown."""
        st = self.state
        if action.startswith("slice:"):
            arg = action.split(":", 1)[1]
            if arg == "first":
                st.set_slice(0)
            elif arg == "last":
                st.set_slice(st.slice_count - 1)
            else:
                st.step_slice(int(arg))
        elif action.startswith("preset:"):
            st.image.apply_preset(int(action.split(":", 1)[1]))
        elif action.startswith("tool:"):
            st.set_tool(action.split(":", 1)[1])
            self.measure_layer.cancel()
        elif action == "invert":
            st.image.set_invert(not st.image.invert)
        elif action == "flip_h":
            st.flip(horizontal=True)
        elif action == "flip_v":
            st.flip(horizontal=False)
        elif action == "rotate_cw":
            st.rotate(1)
        elif action == "rotate_ccw":
            st.rotate(-1)
        elif action == "reset":
            st.reset_view()
        elif action == "delete":
            self.measure_layer.delete_selected()
        elif action == "cancel":
            self.measure_layer.cancel()
            st.set_tool("window")
        else:
            return False
        return True

    def _wheel(self, ev: Any) -> None:
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        steps = int(round(delta / 120.0)) or (1 if delta > 0 else -1 if delta < 0 else 0)
        # Wheel down (negative delta) goes to the next slice, as in OHIF and Weasis.
        self.state.step_slice(-steps)
        ev.accept()

    def _click(self, ev: Any) -> None:
        action = self.bindings.drag_action(ev.button(), ev.modifiers())
        if action == "tool" and self.state.tool in ("distance", "angle", "rect", "ellipse"):
            if self.measure_layer.click(ev):
                ev.accept()
                return
        if ev.button() == Qt.MouseButton.LeftButton and (action == "crosshair" or (self.show_crosshair and action == "tool")):
            self._set_crosshair_at(ev.scenePos())
            ev.accept()
            return
        ev.ignore()

    def _set_crosshair_at(self, scene_pos: QPointF) -> None:
        if self.state.geometry is None:
            return
        row, col = self.scene_to_slice(scene_pos)
        self.state.image.set_crosshair(self.state.point_to_lps(row, col))

    def _drag(self, ev: Any) -> None:
        if self.state.geometry is None:
            ev.ignore()
            return
        ev.accept()
        if ev.isStart():
            action = self.bindings.drag_action(ev.button(), ev.modifiers())
            if action == "tool":
                action = self.state.tool
            img = self.state.image
            self._drag_state = {
                "action": action,
                "center": img.center,
                "width": img.width,
                "zoom": self.state.zoom,
                "start": ev.buttonDownScenePos(),
            }
        action = self._drag_state.get("action")
        pos, last = ev.scenePos(), ev.lastScenePos()
        if action == "window":
            start = self._drag_state["start"]
            step = max(self._drag_state["width"] * bnd.WL_FRACTION_PER_PIXEL, bnd.MIN_WL_STEP)
            dx, dy = pos.x() - start.x(), pos.y() - start.y()
            self.state.image.set_window(self._drag_state["center"] + dy * step, self._drag_state["width"] + dx * step)
        elif action == "pan":
            a, b = self.vb.mapSceneToView(last), self.vb.mapSceneToView(pos)
            px, py = self.state.pan
            self.state.set_pan(px - (b.x() - a.x()), py - (b.y() - a.y()))
        elif action == "zoom":
            start = self._drag_state["start"]
            self.state.set_zoom(self._drag_state["zoom"] * math.exp(-(pos.y() - start.y()) * bnd.ZOOM_PER_PIXEL))
        elif action == "crosshair":
            self._set_crosshair_at(pos)
        elif action in ("distance", "angle", "rect", "ellipse"):
            self.measure_layer.drag(ev, action)
        if ev.isFinish():
            self._drag_state = {}

    def mouseMoveEvent(self, ev: Any) -> None:  # noqa: N802
        super().mouseMoveEvent(ev)
        self._hover = self.mapToScene(ev.position().toPoint())
        self._update_cursor(self._hover)

    def leaveEvent(self, ev: Any) -> None:  # noqa: N802
        super().leaveEvent(ev)
        self._hover = None
        self._cursor = None
        self.cursor_moved.emit(None)
        self._refresh_overlay()

    def _update_cursor(self, scene_pos: QPointF, hovering: bool = True) -> None:
        """The readout (LPS point, pixel, value) under ``scene_pos``; ``hovering``: the mouse moved there
        (measurement handles react), else the image moved under a still mouse."""
        st = self.state
        g = st.geometry
        arr = st.slice_array()
        if g is None or arr is None:
            self._cursor = None
            self._refresh_overlay()
            return
        row, col = self.scene_to_slice(scene_pos)
        r, c = int(round(row)), int(round(col))
        value: float | tuple[float, ...] | None = None
        if 0 <= r < g.shape[0] and 0 <= c < g.shape[1]:
            v = arr[r, c]
            value = tuple(float(x) for x in v) if arr.ndim == 3 else float(v)
        self._cursor = Cursor(st.point_to_lps(row, col), r, c, value)
        if hovering:
            self.measure_layer.hover(scene_pos)
        self.cursor_moved.emit(self._cursor)
        self._refresh_overlay()

    def close_view(self) -> None:
        """Stop observing state (which may outlive this widget: a viewport's image state shown in MPR)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self.state.detach()

    def closeEvent(self, ev: Any) -> None:  # noqa: N802
        self.close_view()
        super().closeEvent(ev)


def grab_png(widget: Any, path: str) -> bool:
    """Render ``widget`` as it would appear on screen to a PNG file (works offscreen)."""
    return bool(widget.grab().save(path))


__all__ = ["SliceImageItem", "SliceViewport", "WindowLut", "colour_to_uint8", "grab_png"]
