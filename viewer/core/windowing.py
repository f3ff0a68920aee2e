"""Window/level (VOI LUT) math: modality values (HU for CT) -> display grey levels.

The linear function is DICOM PS3.3 C.11.2.1.2.1: with centre c and width w,
``y = ((x - (c - 0.5)) / (w - 1) + 0.5)``, clipped to [0, 1]. Every place that windows (the viewport,
thumbnails, AI preprocessing with ``op = "window"``) uses these functions so they agree to the grey level.
"""

from __future__ import annotations

import numpy as np


def window_bounds(center: float, width: float) -> tuple[float, float]:
    """The values mapped to black and white by the DICOM linear window (width is clamped to >= 1)."""
    width = max(float(width), 1.0)
    low = float(center) - 0.5 - (width - 1.0) / 2.0
    return low, low + (width - 1.0)


def apply_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Window ``values`` to float32 in [0, 1] (DICOM linear function)."""
    low, high = window_bounds(center, width)
    scale = 1.0 / max(high - low, 1e-6)
    out = (np.asarray(values, dtype=np.float32) - np.float32(low)) * np.float32(scale)
    np.clip(out, 0.0, 1.0, out=out)
    return out


def window_to_uint8(values: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """Window ``values`` to uint8 grey levels 0..255; ``invert`` for MONOCHROME1 or the user's invert."""
    out = apply_window(values, center, width)
    if invert:
        np.subtract(1.0, out, out=out)
    out *= 255.0
    out += 0.5  # round to nearest, not truncate
    return out.astype(np.uint8)


def default_window(values: np.ndarray, modality: str = "") -> tuple[float, float]:
    """A (center, width) to show a series with no stored window.

    CT gets the soft-tissue window; everything else spans the 0.5th..99.5th percentile of the values,
    so a single hot pixel or the padding does not wash the image out.
    """
    if modality.upper() == "CT":
        return 40.0, 400.0
    sample = np.asarray(values)
    if sample.size > 1_000_000:
        sample = sample.reshape(-1)[:: sample.size // 1_000_000 + 1]
    lo, hi = np.percentile(sample, [0.5, 99.5]) if sample.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return float((lo + hi) / 2.0), float(hi - lo)
