"""Cropping stacks of 2D images (pure numpy; the last two axes are rows, columns)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def center_crop_bounds(height: int, width: int, fraction: float | Sequence[float]) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1), half-open, of the centred box keeping ``fraction`` of each side.

    ``fraction`` is one number for both axes or (rows, columns), each in (0, 1]. The kept size is
    ``round(side * fraction)`` (at least 1 pixel) and the box is centred with the odd pixel left at the
    bottom/right, as torchvision's ``CenterCrop`` does (``top = int(round((H - h) / 2))``).
    """
    if isinstance(fraction, (int, float)):
        fy = fx = float(fraction)
    else:
        fy, fx = float(fraction[0]), float(fraction[1])
    for f in (fy, fx):
        if not 0.0 < f <= 1.0:
            raise ValueError(f"crop fraction must be in (0, 1], got {f}")
    h = max(1, int(round(height * fy)))
    w = max(1, int(round(width * fx)))
    top = int(round((height - h) / 2.0))
    left = int(round((width - w) / 2.0))
    return top, left, top + h, left + w


def crop_box(images: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """View of ``images[..., row0:row1, col0:col1]`` for ``box`` = (row0, col0, row1, col1), half-open pixels.

    Raises ``ValueError`` when the box is empty or leaves the image: a crop that silently shrank would
    feed a model a different field of view than asked for.
    """
    if len(box) != 4:
        raise ValueError(f"box must be (row0, col0, row1, col1), got {list(box)}")
    r0, c0, r1, c1 = (int(v) for v in box)
    h, w = images.shape[-2], images.shape[-1]
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise ValueError(f"box (row0, col0, row1, col1) = {(r0, c0, r1, c1)} is empty or outside the {h}x{w} image")
    return images[..., r0:r1, c0:c1]


def center_square_bounds(height: int, width: int) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) of the centred square whose side is the shorter image side (offsets rounded
    as in :func:`center_crop_bounds`), e.g. to make a radiograph square without distorting it."""
    side = min(height, width)
    top = int(round((height - side) / 2.0))
    left = int(round((width - side) / 2.0))
    return top, left, top + side, left + side


def center_crop(images: np.ndarray, fraction: float | Sequence[float]) -> np.ndarray:
    """Centred crop keeping ``fraction`` of the rows and columns (see :func:`center_crop_bounds`)."""
    return crop_box(images, center_crop_bounds(images.shape[-2], images.shape[-1], fraction))
