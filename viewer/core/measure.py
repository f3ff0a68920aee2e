"""Measurements on slices: distance, angle and ROI statistics, in mm, degrees and modality units (HU).

Pure numpy. Points are patient LPS mm for lengths and angles (so they hold across any plane and any
pixel spacing), and 2D slice (row, col) pixel coordinates, pixel-centre based, for ROI masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def distance_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance in mm between two LPS points (mm)."""
    return float(np.linalg.norm(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)))


def angle_deg(a: np.ndarray, vertex: np.ndarray, b: np.ndarray) -> float:
    """The angle a-vertex-b in degrees (0..180), from LPS points in mm; 0 when an arm has zero length."""
    u = np.asarray(a, dtype=np.float64) - np.asarray(vertex, dtype=np.float64)
    v = np.asarray(b, dtype=np.float64) - np.asarray(vertex, dtype=np.float64)
    nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    if nu == 0.0 or nv == 0.0:
        return 0.0
    c = float(np.clip((u @ v) / (nu * nv), -1.0, 1.0))
    return math.degrees(math.acos(c))


def rect_mask(shape: tuple[int, int], r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """Pixels of a (rows, cols) image whose centres lie in the rectangle spanned by two corners.

    Corners are continuous (row, col); their order does not matter. Boundaries are inclusive.
    """
    lo_r, hi_r = sorted((float(r0), float(r1)))
    lo_c, hi_c = sorted((float(c0), float(c1)))
    rows = np.arange(shape[0])
    cols = np.arange(shape[1])
    return ((rows >= lo_r) & (rows <= hi_r))[:, None] & ((cols >= lo_c) & (cols <= hi_c))[None, :]


def ellipse_mask(shape: tuple[int, int], r0: float, c0: float, r1: float, c1: float) -> np.ndarray:
    """Pixels whose centres lie in the axis-aligned ellipse inscribed in the rectangle of two corners."""
    lo_r, hi_r = sorted((float(r0), float(r1)))
    lo_c, hi_c = sorted((float(c0), float(c1)))
    cr, cc = (lo_r + hi_r) / 2.0, (lo_c + hi_c) / 2.0
    ar, ac = max((hi_r - lo_r) / 2.0, 1e-9), max((hi_c - lo_c) / 2.0, 1e-9)
    rows = (np.arange(shape[0]) - cr) / ar
    cols = (np.arange(shape[1]) - cc) / ac
    return rows[:, None] ** 2 + cols[None, :] ** 2 <= 1.0


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the pixels inside a ROI, in modality units (HU for CT), and its area in mm^2.

    ``area_mm2`` is the geometric area of the drawn shape (pi*a*b for an ellipse), ``pixels`` the
    number of pixel centres inside it; ``sd`` is the population standard deviation (ddof=0), as
    OHIF and Horos report it. The statistics are NaN when no pixel centre falls inside.
    """

    mean: float
    sd: float
    min: float
    max: float
    pixels: int
    area_mm2: float


def roi_stats(image: np.ndarray, mask: np.ndarray, area_mm2: float) -> RoiStats:
    """Mean, SD, min, max of ``image`` (2D, modality units) over boolean ``mask``; ``area_mm2`` as given."""
    values = np.asarray(image)[np.asarray(mask, dtype=bool)]
    if values.size == 0:
        nan = float("nan")
        return RoiStats(nan, nan, nan, nan, 0, float(area_mm2))
    v = values.astype(np.float64)
    return RoiStats(float(v.mean()), float(v.std()), float(v.min()), float(v.max()), int(v.size), float(area_mm2))


def rect_area_mm2(r0: float, c0: float, r1: float, c1: float, row_mm: float, col_mm: float) -> float:
    """Area in mm^2 of the rectangle between two (row, col) corners with the given pixel size (mm)."""
    return abs(float(r1) - float(r0)) * row_mm * abs(float(c1) - float(c0)) * col_mm


def ellipse_area_mm2(r0: float, c0: float, r1: float, c1: float, row_mm: float, col_mm: float) -> float:
    """Area in mm^2 of the ellipse inscribed in the rectangle between two (row, col) corners."""
    return math.pi / 4.0 * rect_area_mm2(r0, c0, r1, c1, row_mm, col_mm)
