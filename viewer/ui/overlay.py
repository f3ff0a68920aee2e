"""Corner text, orientation letters and the scale bar, painted over a slice viewport.

``overlay_text(state, cursor)`` builds the four corner texts from state (no Qt; easy to test);
``paint_overlay`` draws them, the side letters and a scale bar in viewport pixels with a dark
outline so they stay legible on white bone and black air alike.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPixmap

from viewer.core.orientation import direction_letters, opposite_letters
from viewer.core.volume import Volume
from viewer.state.image import orientation_known
from viewer.state.view import ViewState


@dataclass
class Cursor:
    """What is under the mouse: LPS point (mm), 2D slice (row, col) and the value there (None outside)."""

    lps: np.ndarray
    row: int
    col: int
    value: float | tuple[float, ...] | None


@dataclass
class OverlayContent:
    """Everything the overlay shows, as plain text."""

    top_left: list[str] = field(default_factory=list)
    top_right: list[str] = field(default_factory=list)
    bottom_left: list[str] = field(default_factory=list)
    bottom_right: list[str] = field(default_factory=list)
    # Letters at the left, right, top and bottom edges.
    left: str = ""
    right: str = ""
    top: str = ""
    bottom: str = ""
    message: str = ""


def volume_label(vol: Volume) -> str:
    """The 4D line: which volume of how many, and what sets it apart (b-value, echo time, phase ...)."""
    axis = vol.volumes
    assert axis is not None
    info = axis.items[axis.index]
    detail = ""
    if axis.kind == "diffusion" and info.b_value is not None:
        detail = f"b={info.b_value:g}"
    elif axis.kind == "echo" and info.echo_time is not None:
        detail = f"TE {info.echo_time:g} ms"
    elif axis.kind == "phase" and info.trigger_time is not None:
        detail = f"trigger {info.trigger_time:g} ms"
    elif axis.kind == "image type" and info.image_type:
        detail = info.image_type
    return f"{axis.kind} {axis.index + 1}/{axis.count}" + (f"  {detail}" if detail else "")


def _fmt_date(text: str) -> str:
    t = str(text)
    return f"{t[:4]}-{t[4:6]}-{t[6:8]}" if len(t) == 8 and t.isdigit() else t


def orientation_letters(state: ViewState) -> tuple[str, str, str, str]:
    """(left, right, top, bottom) letters of the current view, after flips and rotation."""
    g = state.geometry
    if g is None or state.volume is None or not orientation_known(state.volume):
        return "", "", "", ""
    right, down = state.transform.screen_axes(np.asarray(g.row_dir), np.asarray(g.col_dir))
    r, d = direction_letters(right), direction_letters(down)
    return opposite_letters(r), r, opposite_letters(d), d


def overlay_text(state: ViewState, cursor: Cursor | None = None, screen_mm_per_px: float | None = None) -> OverlayContent:
    """The corner texts and side letters for ``state``; ``cursor`` adds the value under the mouse."""
    out = OverlayContent()
    vol = state.volume
    g = state.geometry
    if vol is None or g is None:
        return out
    info = vol.info
    # Anonymised data often repeat one string as name and ID: once is enough.
    out.top_left = [s for s in dict.fromkeys((info.patient_name, info.patient_id)) if s]
    if vol.warnings:
        # The first loader/geometry warning, short: the full list belongs in the browser's tooltip.
        first = str(vol.warnings[-1] if "geometry unusable" in str(vol.warnings[-1]) else vol.warnings[0])
        more = f" (+{len(vol.warnings) - 1})" if len(vol.warnings) > 1 else ""
        out.top_left.append("⚠ " + (first if len(first) <= 60 else first[:57] + "...") + more)
    out.top_right = [s for s in (_fmt_date(info.study_date), info.study_description) if s]
    number = info.series_number
    series_line = " ".join(s for s in (f"Se {number}" if number is not None else "", info.series_description) if s)
    out.top_right.append(series_line or vol.modality)
    plane = f"{g.plane} " if g.plane != "acquired" else ""
    image_line = f"{plane}Im {state.slice_index + 1}/{g.count}"
    if g.plane == "acquired" and len(info.slices) == vol.shape[0]:
        # The file's own InstanceNumber, when it is not the image number shown (gaps, a subset, a
        # series numbered from elsewhere): the number a PACS report or a colleague quotes.
        number = info.instance_number(state.slice_index)
        if number is not None and number != state.slice_index + 1:
            image_line += f" (Inst {number})"
    out.bottom_left = [f"{image_line}  {state.slice_position_mm():.1f} mm"]
    if vol.volumes is not None:
        out.bottom_left.append(volume_label(vol))
    # On its own line: narrow MPR views must not run it into the window text on the right.
    if g.resampled:
        out.bottom_left.append(f"resampled: grid {g.obliquity_deg:.0f}° oblique")
    elif g.plane != "acquired" and g.obliquity_deg > 1.0:
        out.bottom_left.append(f"acquired grid, {g.obliquity_deg:.0f}° oblique")
    out.bottom_left.append(f"{g.col_mm:.2f} x {g.row_mm:.2f} mm")
    # Slice thickness (nominal, from the file) and spacing (between slice centres, from the geometry):
    # a 5 mm slice every 2.5 mm overlaps; readers need both to judge partial volume.
    spacing = _slice_spacing(state)
    thick = info.slice_thickness if g.plane == "acquired" else None
    parts = ([f"Thk {thick:.3g} mm"] if thick else []) + ([f"Sp {spacing:.3g} mm"] if spacing else [])
    if parts and g.count > 1:
        out.bottom_left.append("  ".join(parts))
    if cursor is not None:
        x, y, z = (float(v) for v in cursor.lps)
        unit = " HU" if vol.modality.upper() == "CT" else ""
        if cursor.value is None:
            value = "—"
        elif isinstance(cursor.value, tuple):
            value = "RGB " + ",".join(f"{v:.0f}" for v in cursor.value)
        elif float(cursor.value).is_integer():
            value = f"{cursor.value:.0f}{unit}"
        else:
            value = f"{cursor.value:.2f}{unit}"
        out.bottom_left.insert(0, f"({cursor.col}, {cursor.row})  {value}")
        out.bottom_left.insert(1, f"L {x:.1f}  P {y:.1f}  S {z:.1f} mm")
    w = state.image.width
    c = state.image.center
    if vol.is_color:
        out.bottom_right = [f"Zoom {state.zoom * 100:.0f}%"]
    else:
        out.bottom_right = [f"W {w:.0f}  L {c:.0f}" + ("  inv" if state.image.invert else ""), f"Zoom {state.zoom * 100:.0f}%"]
    out.left, out.right, out.top, out.bottom = orientation_letters(state)
    return out


def _slice_spacing(state: ViewState) -> float | None:
    """Distance in mm between the centres of neighbouring slices of the current plane."""
    g = state.geometry
    if g is None or g.count < 2:
        return None
    k = min(state.slice_index, g.count - 2)
    return abs(state.slice_position_mm(k + 1) - state.slice_position_mm(k))


def nice_length(max_mm: float) -> float:
    """The largest 1-2-5 x 10^n length in mm not above ``max_mm`` (for the scale bar)."""
    if max_mm <= 0:
        return 0.0
    exp = math.floor(math.log10(max_mm))
    for m in (5.0, 2.0, 1.0):
        v = m * 10.0**exp
        if v <= max_mm:
            return v
    return 10.0**exp


_TEXT = QColor(235, 235, 235)
_LETTER = QColor(255, 214, 90)
_SHADOW = QColor(0, 0, 0, 220)


_HALO = ((1, 1), (-1, -1), (1, -1), (-1, 1))
_LINE_CACHE: OrderedDict[tuple[str, str, int, float], tuple[QPixmap, float]] = OrderedDict()
_LINE_CACHE_SIZE = 512  # lines of corner text, letters and scale labels: a few per view


def _text_pixmap(text: str, font: QFont, color: QColor, dpr: float) -> tuple[QPixmap, float]:
    """``text`` with its halo drawn once into a transparent pixmap, and the baseline's offset from the
    pixmap's top. A slice change alters one or two corner lines; the other lines are a cached blit instead
    of five glyph runs each (the overlay was a third of a 512^2 redraw)."""
    key = (text, font.key(), color.rgba(), dpr)
    hit = _LINE_CACHE.get(key)
    if hit is not None:
        _LINE_CACHE.move_to_end(key)
        return hit
    fm = QFontMetricsF(font)
    margin = 2.0  # the halo's pixel and glyphs that overhang their advance
    w = fm.horizontalAdvance(text) + 2 * margin + 2
    h = fm.height() + 2 * margin
    pix = QPixmap(max(1, math.ceil(w * dpr)), max(1, math.ceil(h * dpr)))
    pix.setDevicePixelRatio(dpr)
    pix.fill(Qt.GlobalColor.transparent)
    q = QPainter(pix)
    q.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    q.setFont(font)
    base = QPointF(margin, margin + fm.ascent())
    q.setPen(_SHADOW)
    for dx, dy in _HALO:
        q.drawText(base + QPointF(dx, dy), text)
    q.setPen(color)
    q.drawText(base, text)
    q.end()
    _LINE_CACHE[key] = (pix, margin + fm.ascent())
    if len(_LINE_CACHE) > _LINE_CACHE_SIZE:
        _LINE_CACHE.popitem(last=False)
    return pix, margin + fm.ascent()


def _draw_text(p: QPainter, x: float, y: float, text: str, font: QFont, color: QColor) -> None:
    # A black halo from four offset copies: legible on white bone and on air (stroking a text path
    # instead cost 5 ms per frame), drawn once per distinct line and then blitted from a cache.
    if not text:
        return
    pix, baseline = _text_pixmap(text, font, color, p.device().devicePixelRatioF())
    p.drawPixmap(QPointF(round(x - 2.0), round(y - baseline)), pix)


def paint_overlay(p: QPainter, rect: QRectF, content: OverlayContent, mm_per_px: float | None) -> None:
    """Draw ``content`` into viewport rectangle ``rect`` (device pixels); ``mm_per_px`` for the scale bar."""
    p.save()
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    font = QFont()
    # Smaller in narrow views (three MPR planes side by side), so the four corners stay apart.
    font.setPixelSize(max(10, min(15, int(rect.height() / 40), int(rect.width() / 26))))
    fm = QFontMetricsF(font)
    line = fm.height()
    pad = 6.0
    big = QFont(font)
    big.setPixelSize(font.pixelSize() + 5)
    big.setBold(True)
    bfm = QFontMetricsF(big)
    cx, cy = rect.center().x(), rect.center().y()
    gap = 8.0

    def block(lines: list[str], left: bool, top: bool, other: list[str], letter: str) -> None:
        """One corner; each line is cut (…) where it would run into the facing corner's line on the same
        row or into the orientation letter in the middle of the edge."""
        n, m = len(lines), len(other)
        full = rect.width() - 2 * pad
        for idx, text in enumerate(lines):
            row = idx if top else n - 1 - idx  # rows counted from the edge
            facing = other[row] if top and row < m else (other[m - 1 - row] if not top and row < m else "")
            width = full
            if facing:
                width = max(full - fm.horizontalAdvance(facing) - gap, (full - gap) / 2)
            if letter and row == 0:
                width = min(width, rect.width() / 2 - pad - bfm.horizontalAdvance(letter) / 2 - gap)
            if fm.horizontalAdvance(text) > width:
                text = fm.elidedText(text, Qt.TextElideMode.ElideRight, max(width, 0.0))
            y = rect.top() + pad + fm.ascent() + idx * line if top else rect.bottom() - pad - fm.descent() - (n - 1 - idx) * line
            x = rect.left() + pad if left else rect.right() - pad - fm.horizontalAdvance(text)
            _draw_text(p, x, y, text, font, _TEXT)

    block(content.top_left, True, True, content.top_right, content.top)
    block(content.top_right, False, True, content.top_left, content.top)
    block(content.bottom_left, True, False, content.bottom_right, content.bottom)
    block(content.bottom_right, False, False, content.bottom_left, content.bottom)

    if content.left:
        _draw_text(p, rect.left() + pad, cy + bfm.ascent() / 2, content.left, big, _LETTER)
    if content.right:
        _draw_text(p, rect.right() - pad - bfm.horizontalAdvance(content.right), cy + bfm.ascent() / 2, content.right, big, _LETTER)
    if content.top:
        _draw_text(p, cx - bfm.horizontalAdvance(content.top) / 2, rect.top() + pad + bfm.ascent(), content.top, big, _LETTER)
    if content.bottom:
        # Above the bottom text blocks' baseline is the middle; keep the letter clear of the corner texts.
        _draw_text(p, cx - bfm.horizontalAdvance(content.bottom) / 2, rect.bottom() - pad - bfm.descent(), content.bottom, big, _LETTER)

    if mm_per_px and mm_per_px > 0:
        # Vertical scale bar on the right edge, a quarter of the height at most, as Weasis and Horos draw it.
        length_mm = nice_length(rect.height() * 0.25 * mm_per_px)
        if length_mm > 0:
            length_px = length_mm / mm_per_px
            x = rect.right() - pad - 2
            # Below the right-hand orientation letter, clear of the bottom-right corner text.
            y0 = cy + bfm.height()
            room = rect.bottom() - 3 * line - pad - y0
            if length_px > room > 0:
                length_mm = nice_length(room * mm_per_px)
                length_px = length_mm / mm_per_px
            y1 = y0 + length_px
            # Filled rectangles, not antialiased lines: 13 thick AA lines cost 2 ms per frame.
            p.fillRect(QRectF(x - 1.5, y0 - 1, 4, length_px + 2), _SHADOW)
            p.fillRect(QRectF(x - 0.5, y0, 2, length_px), _TEXT)
            for t in range(11):
                yy = y0 + length_px * t / 10
                tick = 8 if t in (0, 5, 10) else 4
                p.fillRect(QRectF(x - tick, yy - 1, tick, 3), _SHADOW)
                p.fillRect(QRectF(x - tick, yy - 0.5, tick, 1.5), _TEXT)
            label = f"{length_mm:g} mm" if length_mm < 10 else f"{length_mm / 10:g} cm"
            _draw_text(p, x - fm.horizontalAdvance(label) - 10, y1 + fm.ascent() / 2, label, font, _TEXT)

    if content.message:
        msg_font = QFont(font)
        msg_font.setPixelSize(font.pixelSize() + 2)
        p.setFont(msg_font)
        p.setPen(QColor(255, 120, 120))
        box = rect.adjusted(40, 40, -40, -40)
        p.fillRect(QRectF(box.left(), cy - 60, box.width(), 120), QColor(0, 0, 0, 170))
        p.drawText(QRectF(box.left() + 8, cy - 56, box.width() - 16, 112), int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), content.message)
    p.restore()
