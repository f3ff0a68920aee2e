"""Display filters for noisy images: mean, median, Gaussian and an edge-preserving bilateral filter.

Plain numpy, in ``core`` rather than in ``io`` with SimpleITK: they act on pixel arrays already loaded
(no file involved), the layer rule keeps SimpleITK inside ``io``, and these definitions are exact and
small enough to test against SimpleITK's own filters (``tests/core/test_filters.py``). Every function
filters the last two axes, so a (rows, columns) slice and a (z, rows, columns) volume (each slice, for
MPR) both work; the borders are handled by repeating the edge pixel. Output is float32 in the input's
units (HU stays HU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _pad(x: np.ndarray, r: int) -> np.ndarray:
    pad = [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)]
    return np.pad(np.asarray(x, dtype=np.float32), pad, mode="edge")


def _convolve_1d(x: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """Correlate with a symmetric odd 1-D kernel along ``axis`` (-1 or -2), edge-replicated."""
    r = len(kernel) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    xp = np.pad(x, pad, mode="edge")
    n = x.shape[axis]
    out = np.zeros(x.shape, dtype=np.float64)
    for i, k in enumerate(kernel):
        out += k * np.take(xp, np.arange(i, i + n), axis=axis)
    return out.astype(np.float32)


def mean_filter(x: np.ndarray, radius: int = 1) -> np.ndarray:
    """Box mean over the (2 radius + 1)^2 neighbourhood."""
    k = np.full(2 * radius + 1, 1.0 / (2 * radius + 1))
    return _convolve_1d(_convolve_1d(np.asarray(x, np.float32), k, -1), k, -2)


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian sampled at integer offsets, truncated at 3 sigma (at least radius 1)."""
    r = max(1, int(np.ceil(3.0 * sigma)))
    t = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return np.asarray(k / k.sum(), dtype=np.float64)


def gaussian_filter(x: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Separable Gaussian smoothing, ``sigma`` in pixels."""
    if sigma <= 0:
        return np.asarray(x, dtype=np.float32).copy()
    k = gaussian_kernel(sigma)
    return _convolve_1d(_convolve_1d(np.asarray(x, np.float32), k, -1), k, -2)


def median_filter(x: np.ndarray, radius: int = 1) -> np.ndarray:
    """Median of the (2 radius + 1)^2 neighbourhood."""
    win = np.lib.stride_tricks.sliding_window_view(_pad(x, radius), (2 * radius + 1, 2 * radius + 1),
                                                   axis=(-2, -1))
    flat = win.reshape(*win.shape[:-2], -1)
    return np.asarray(np.median(flat, axis=-1), dtype=np.float32)


def bilateral_filter(x: np.ndarray, sigma_spatial: float = 1.5, sigma_range: float = 40.0) -> np.ndarray:
    """Bilateral filter (Tomasi & Manduchi 1998): a Gaussian in space times a Gaussian of the grey-level
    difference (``sigma_range``, in the image's units, e.g. HU), so averaging stops at edges that are
    large compared with the noise. Window radius ceil(2 sigma_spatial)."""
    a = np.asarray(x, dtype=np.float32)
    r = max(1, int(np.ceil(2.0 * sigma_spatial)))
    xp = _pad(a, r)
    h, w = a.shape[-2:]
    num = np.zeros(a.shape, dtype=np.float64)
    den = np.zeros(a.shape, dtype=np.float64)
    inv_r = -0.5 / (sigma_range * sigma_range)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ws = np.exp(-0.5 * (dy * dy + dx * dx) / (sigma_spatial * sigma_spatial))
            nb = xp[..., r + dy:r + dy + h, r + dx:r + dx + w]
            wgt = ws * np.exp(inv_r * (nb - a) ** 2)
            num += wgt * nb
            den += wgt
    return (num / den).astype(np.float32)


@dataclass(frozen=True)
class DisplayFilter:
    """A display filter and its strength, as the toolbar menu offers it and the corner text names it."""

    name: str          # key of FILTERS
    strength: float    # radius (mean, median), sigma in pixels (gaussian, bilateral's spatial sigma)
    range_sigma: float = 40.0  # bilateral only: grey-level sigma in modality units

    def apply(self, x: np.ndarray) -> np.ndarray:
        return FILTERS[self.name][1](x, self)

    @property
    def label(self) -> str:
        """Corner-text description, e.g. ``"filter: median 3x3"``."""
        return "filter: " + FILTERS[self.name][0](self)


def _side(f: DisplayFilter) -> int:
    return 2 * int(f.strength) + 1


FILTERS: dict[str, tuple[Callable[[DisplayFilter], str], Callable[[np.ndarray, DisplayFilter], np.ndarray]]] = {
    "mean": (lambda f: f"mean {_side(f)}x{_side(f)}", lambda x, f: mean_filter(x, int(f.strength))),
    "median": (lambda f: f"median {_side(f)}x{_side(f)}", lambda x, f: median_filter(x, int(f.strength))),
    "gaussian": (lambda f: f"Gaussian sigma {f.strength:g} px", lambda x, f: gaussian_filter(x, f.strength)),
    "bilateral": (lambda f: f"bilateral sigma {f.strength:g} px / {f.range_sigma:g}",
                  lambda x, f: bilateral_filter(x, f.strength, f.range_sigma)),
}

#: What the toolbar menu offers (off = no filter).
PRESETS: tuple[DisplayFilter, ...] = (
    DisplayFilter("mean", 1), DisplayFilter("median", 1), DisplayFilter("gaussian", 1.0),
    DisplayFilter("bilateral", 1.5, 40.0),
)


# -- the same choices on a volume (MPR): one neighbourhood in millimetres, true spacing per axis ----------

#: The 3-D edge-preserving filter: curvature flow (ITK's 3-D bilateral took 164 s on a 100-slice 512^2 CT
#: on 2 cores; this takes about 14 s), with a time step stable in 3-D (< 1/2^3) and a few iterations.
CURVATURE_FLOW_STEP = 0.0625
CURVATURE_FLOW_ITERATIONS = 5


def neighbourhood_mm(f: DisplayFilter, spacing: tuple[float, float, float]) -> float:
    """The 2-D preset's reach in millimetres on a volume with ``spacing`` (column, row, slice mm): its
    radius (mean, median) or sigma (Gaussian, bilateral) times the finer in-plane pixel spacing, so a
    volume filter reaches as far as the 2-D one does in the acquired plane."""
    return float(f.strength) * min(spacing[0], spacing[1])


def volume_radii(f: DisplayFilter, spacing: tuple[float, float, float]) -> tuple[int, int, int]:
    """(z, y, x) voxel radii of a mean or median neighbourhood on a volume: :func:`neighbourhood_mm`
    divided by each axis' spacing, rounded half up (a 3x3 in-plane median on 0.8 mm pixels and 2.5 mm
    slices stays one slice thick; on 0.8 mm slices it becomes 3x3x3)."""
    reach = neighbourhood_mm(f, spacing)
    col, row, sl = spacing
    return tuple(int(np.floor(reach / s + 0.5)) if s > 0 else 0 for s in (sl, row, col))  # type: ignore[return-value]


def volume_label(f: DisplayFilter, spacing: tuple[float, float, float]) -> str:
    """Corner-text description of ``f`` applied to a volume, e.g. ``"filter: median 3x3x1 (3D)"``."""
    if f.name in ("mean", "median"):
        rz, ry, rx = volume_radii(f, spacing)
        return f"filter: {f.name} {2 * rx + 1}x{2 * ry + 1}x{2 * rz + 1} (3D)"
    if f.name == "gaussian":
        return f"filter: Gaussian {neighbourhood_mm(f, spacing):.2g} mm (3D)"
    return f"filter: curvature flow x{CURVATURE_FLOW_ITERATIONS} (3D)"
