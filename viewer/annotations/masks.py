"""Pure 2D mask editing operations on boolean (rows, cols) slices: brush, eraser, fill, copy.

Coordinates are pixel indices (row, col) as numpy indexes them, or a brush centre (x=column, y=row) as
floats in the image pixel coordinates of :mod:`viewer.annotations.model`. Every operation returns the
edited copy; callers (the mask editor) keep the before/after for undo.
"""

from __future__ import annotations

import numpy as np


def disc(shape: tuple[int, int], center_xy: tuple[float, float], radius: float) -> np.ndarray:
    """Boolean (rows, cols) image of the pixels whose centres lie within ``radius`` pixels of the centre.

    Parameters
    ----------
    shape
        (rows, cols) of the slice.
    center_xy
        Brush centre (x=column, y=row) in pixels; pixel (r, c) has its centre at (c, r).
    radius
        In pixels; a radius below 0.5 still paints the pixel under the centre.
    """
    rows, cols = shape
    cx, cy = center_xy
    r = max(float(radius), 0.5)
    # Only the bounding box is evaluated, so a small brush on a 512x512 slice costs microseconds.
    r0, r1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, rows)
    c0, c1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, cols)
    out = np.zeros(shape, dtype=bool)
    if r0 >= r1 or c0 >= c1:
        return out
    yy, xx = np.ogrid[r0:r1, c0:c1]
    out[r0:r1, c0:c1] = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return out


def paint(plane: np.ndarray, center_xy: tuple[float, float], radius: float, value: bool = True) -> np.ndarray:
    """A copy of ``plane`` with a disc of ``radius`` pixels set to ``value`` (True = brush, False = eraser)."""
    out = np.array(plane, dtype=bool, copy=True)
    out[disc(out.shape, center_xy, radius)] = value
    return out


def stroke(plane: np.ndarray, points_xy: list[tuple[float, float]], radius: float, value: bool = True) -> np.ndarray:
    """Paint discs along a polyline of brush centres, filling the gaps of a fast mouse drag."""
    out = np.array(plane, dtype=bool, copy=True)
    if not points_xy:
        return out
    step = max(radius / 2.0, 0.5)
    pts = [points_xy[0]]
    for (x0, y0), (x1, y1) in zip(points_xy, points_xy[1:]):
        n = max(int(np.ceil(np.hypot(x1 - x0, y1 - y0) / step)), 1)
        pts.extend((x0 + (x1 - x0) * t / n, y0 + (y1 - y0) * t / n) for t in range(1, n + 1))
    for p in pts:
        out[disc(out.shape, p, radius)] = value
    return out


def flood_fill(plane: np.ndarray, seed_rc: tuple[int, int], value: bool = True) -> np.ndarray:
    """Set the 4-connected region of equal pixels containing ``seed_rc`` (row, col) to ``value``.

    Clicking inside an outline fills it; clicking outside fills the background reachable from there.
    Works on horizontal runs (numpy finds them; a breadth-first search joins runs that overlap in the
    next or previous row), so the cost grows with the number of runs the region has, not with its
    diameter: a maze-like region is as cheap as a square one.
    """
    plane = np.asarray(plane, dtype=bool)
    r, c = int(seed_rc[0]), int(seed_rc[1])
    rows, cols = plane.shape
    if not (0 <= r < rows and 0 <= c < cols):
        raise ValueError(f"fill seed {seed_rc} lies outside a {rows}x{cols} slice")
    allowed = plane == plane[r, c]
    # Runs of allowed pixels, row-major: run k covers row run_row[k], columns [run_start[k], run_end[k]).
    padded = np.zeros((rows, cols + 2), dtype=np.int8)
    padded[:, 1:-1] = allowed
    edges = np.diff(padded, axis=1)
    start_r, start_c = np.nonzero(edges == 1)
    _, end_c = np.nonzero(edges == -1)
    row_first = np.searchsorted(start_r, np.arange(rows + 1))  # runs of row y: row_first[y]:row_first[y+1]
    seed = int(row_first[r] + np.searchsorted(start_c[row_first[r]:row_first[r + 1]], c, side="right") - 1)
    visited = np.zeros(len(start_r), dtype=bool)
    visited[seed] = True
    queue = [seed]
    out = plane.copy()
    while queue:
        k = queue.pop()
        y, x0, x1 = int(start_r[k]), int(start_c[k]), int(end_c[k])
        out[y, x0:x1] = value
        for ny in (y - 1, y + 1):
            if not 0 <= ny < rows:
                continue
            lo, hi = int(row_first[ny]), int(row_first[ny + 1])
            # Runs of row ny overlapping [x0, x1): those starting before x1 and ending after x0.
            first = lo + int(np.searchsorted(end_c[lo:hi], x0, side="right"))
            last = lo + int(np.searchsorted(start_c[lo:hi], x1, side="left"))
            for j in range(first, last):
                if not visited[j]:
                    visited[j] = True
                    queue.append(j)
    return out


def fill_holes(plane: np.ndarray) -> np.ndarray:
    """A copy with every background region not connected to the slice border set True."""
    plane = np.asarray(plane, dtype=bool)
    padded = np.pad(plane, 1)  # the 1-pixel frame makes all outside background one connected region
    outside = flood_fill(padded, (0, 0), True) & ~padded
    return np.asarray(~outside[1:-1, 1:-1], dtype=bool)


def polygon_mask(shape: tuple[int, int], points_xy: list[tuple[float, float]]) -> np.ndarray:
    """Pixels whose centres lie inside a polygon (even-odd rule), for rasterising ROIs into masks."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    inside = np.zeros(shape, dtype=bool)
    n = len(points_xy)
    for i in range(n):
        x0, y0 = points_xy[i]
        x1, y1 = points_xy[(i + 1) % n]
        if y0 == y1:
            continue
        crosses = (yy >= min(y0, y1)) & (yy < max(y0, y1))
        x_at = x0 + (yy - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (xx < x_at)
    return inside
