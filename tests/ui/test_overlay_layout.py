"""Corner texts never run into each other or into the orientation letters, even in narrow MPR planes."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage, QPainter

from viewer.ui.overlay import OverlayContent, paint_overlay


def _ink(content: OverlayContent, width: int = 300, height: int = 400) -> np.ndarray:
    img = QImage(width, height, QImage.Format.Format_RGB32)
    img.fill(QColor(0, 0, 0))
    p = QPainter(img)
    paint_overlay(p, QRectF(0, 0, width, height), content, None)
    p.end()
    arr = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes()).reshape(height, -1, 4)
    return arr[:, :width, :3].max(axis=2).copy() > 60


def test_a_long_name_stops_before_the_top_letter(qapp) -> None:
    long_name = "Anonymous-Patient-With-A-Very-Long-Name^Second^Third"
    letter_only = _ink(OverlayContent(top="A"))
    both = _ink(OverlayContent(top_left=[long_name], top="A"))
    text_ink = both & ~letter_only
    cols = np.flatnonzero(text_ink[:30].any(axis=0))
    letter_cols = np.flatnonzero(letter_only[:30].any(axis=0))
    assert cols.size and letter_cols.size
    assert cols.max() < letter_cols.min() - 2  # a gap between the cut name and the letter
    # Without the letter the same name runs on towards the right edge: the cut is the letter's doing.
    alone = _ink(OverlayContent(top_left=[long_name]))
    assert np.flatnonzero(alone[:30].any(axis=0)).max() > letter_cols.max()


def test_facing_corner_lines_do_not_overlap(qapp) -> None:
    left = _ink(OverlayContent(bottom_left=["coronal Im 257/512  96.9 mm resampled and long"]))
    right = _ink(OverlayContent(bottom_right=["W 400  L 60  inv"]))
    both = _ink(OverlayContent(bottom_left=["coronal Im 257/512  96.9 mm resampled and long"],
                               bottom_right=["W 400  L 60  inv"]))
    rows = slice(360, 400)
    left_part = both[rows] & ~right[rows]
    assert np.flatnonzero(left_part.any(axis=0)).max() < np.flatnonzero(right[rows].any(axis=0)).min()
    assert np.flatnonzero(left[rows].any(axis=0)).max() > np.flatnonzero(right[rows].any(axis=0)).min()
