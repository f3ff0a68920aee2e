"""Resizing stacks of 2D images, defined to match PyTorch so that models see what they were trained on.

All functions resize the last two axes (rows, columns) of an array of any leading shape, e.g. (N, C, H, W)
or (z, y, x), and return float32. The interpolation modes are exactly those of
``torch.nn.functional.interpolate`` with ``size=`` given (not ``scale_factor=``) and no antialiasing:

``nearest``
    ``F.interpolate(mode="nearest")``: output index ``d`` reads input index ``floor(d * in / out)``
    (clamped to ``in - 1``). This is PyTorch's legacy nearest, not ``nearest-exact``.
``bilinear``
    ``F.interpolate(mode="bilinear", align_corners=False)``: pixel centres are aligned, the source
    coordinate is ``(d + 0.5) * in / out - 0.5`` clamped below at 0, and the two neighbours are blended
    linearly (the upper one clamped to ``in - 1``). Downscaling does not low-pass filter (no antialias).
``area``
    ``F.interpolate(mode="area")`` = ``adaptive_avg_pool2d``: output index ``d`` is the mean of input
    indices ``floor(d * in / out)`` .. ``ceil((d + 1) * in / out) - 1``.

The operation is separable. Columns are resized first and rows second; for bilinear that is the order of
PyTorch's CPU kernel (``w0h * (w0w * x00 + w1w * x01) + w1h * (...)``), so float32 results agree to rounding.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np

Interpolation = Literal["nearest", "bilinear", "area"]
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "area")


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    scale = np.float32(n_in) / np.float32(n_out)  # PyTorch computes the scale in float32 here
    idx = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    out: np.ndarray = np.minimum(idx, n_in - 1)
    return out


def _bilinear_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and upper weight per output index (PyTorch align_corners=False)."""
    scale = np.float32(n_in) / np.float32(n_out)  # float32 division, as PyTorch's opmath for float
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)  # src >= 0, so truncation is floor
    i0 = np.minimum(i0, n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, lam


def _area_bounds(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.arange(n_out)
    start = (d * n_in) // n_out
    end = -((-(d + 1) * n_in) // n_out)  # ceil division in integers, no float rounding
    return start, end


@functools.lru_cache(maxsize=64)
def _area_plan(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Segment bounds, first/last segment of each window and window sizes (cached: slices repeat sizes)."""
    start, end = _area_bounds(n_in, n_out)
    bounds = np.unique(np.concatenate([start, end]))
    lo, hi = np.searchsorted(bounds, start), np.searchsorted(bounds, end)
    return bounds, lo, hi, (end - start).astype(np.float64)


def _resize_axis(a: np.ndarray, n_out: int, axis: int, mode: str) -> np.ndarray:
    n_in = a.shape[axis]
    if n_in == n_out and mode != "area":
        return a
    if mode == "nearest":
        return np.take(a, _nearest_index(n_in, n_out), axis=axis)
    if mode == "bilinear":
        i0, i1, lam = _bilinear_weights(n_in, n_out)
        shape = [1] * a.ndim
        shape[axis] = n_out
        lam = lam.reshape(shape)
        # w0 * x0 + w1 * x1 in float32, the same expression PyTorch evaluates
        blended: np.ndarray = np.take(a, i0, axis=axis) * (np.float32(1.0) - lam) + np.take(a, i1, axis=axis) * lam
        return blended
    if mode == "area":
        if n_in == n_out:
            return a
        # Windows overlap by a pixel when n_in is not a multiple of n_out. Sum the elementary segments
        # between all window bounds in one pass (reduceat), then each window is a run of segments:
        # one read of the data instead of a matrix product's n_out multiply-adds per pixel.
        bounds, lo, hi, counts = _area_plan(n_in, n_out)
        seg = np.add.reduceat(a, bounds[:-1], axis=axis)
        cs = np.cumsum(seg, axis=axis, dtype=np.float64)
        pad = [(0, 0)] * a.ndim
        pad[axis] = (1, 0)
        cs = np.pad(cs, pad)
        shape = [1] * a.ndim
        shape[axis] = n_out
        count = counts.reshape(shape)
        mean: np.ndarray = ((np.take(cs, hi, axis=axis) - np.take(cs, lo, axis=axis)) / count).astype(np.float32)
        return mean
    raise ValueError(f"unknown interpolation {mode!r}; expected one of {', '.join(INTERPOLATIONS)}")


def resize(images: np.ndarray, size: tuple[int, int] | list[int], interpolation: str = "bilinear") -> np.ndarray:
    """Resize the last two axes of ``images`` to ``size`` = (rows, columns).

    Parameters
    ----------
    images
        Array of shape (..., H, W), any real dtype; values keep their units (e.g. HU).
    size
        Output (rows, columns), both >= 1.
    interpolation
        ``"nearest"``, ``"bilinear"`` or ``"area"``, each exactly as PyTorch defines it (module docstring).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (..., rows, columns).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(INTERPOLATIONS)}")
    if len(size) != 2 or any(int(s) < 1 for s in size):
        raise ValueError(f"size must be two positive integers (rows, columns), got {list(size)}")
    a = np.asarray(images)
    if a.ndim < 2 or a.shape[-1] < 1 or a.shape[-2] < 1:
        raise ValueError(f"images must have shape (..., H, W) with H, W >= 1, got {a.shape}")
    if a.dtype != np.float32:
        a = a.astype(np.float32)
    out_h, out_w = int(size[0]), int(size[1])
    if interpolation != "nearest":
        # columns first: PyTorch's order for bilinear; for area, reduceat along the contiguous axis is
        # twice as fast as along rows
        a = _resize_axis(a, out_w, a.ndim - 1, interpolation)
        a = _resize_axis(a, out_h, a.ndim - 2, interpolation)
    else:  # no arithmetic: pick the rows first, it moves the least data
        a = _resize_axis(a, out_h, a.ndim - 2, interpolation)
        a = _resize_axis(a, out_w, a.ndim - 1, interpolation)
    return np.ascontiguousarray(a, dtype=np.float32)


def output_scale(n_in: int, n_out: int) -> float:
    """Input pixels per output pixel along one axis (what the resize uses as its scale)."""
    return n_in / n_out if n_out else math.nan
