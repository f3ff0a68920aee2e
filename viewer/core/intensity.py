"""Histogram normalisation: map each image's grey-level distribution onto a reference one.

Used by the ``histogram_match`` preprocessing op (and by training, on the training images, so both
sides see the same thing). Radiographs come out of scanners with very different display processing
(a full-range file window, another vendor's look-up table); a model trained on 8-bit display-processed
films sees something else unless the grey levels are brought back to the training appearance. Matching
the quantiles is invariant to any increasing grey-level mapping of the input, so it removes exactly
that difference while keeping the image's spatial content.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def quantile_levels(n: int) -> np.ndarray:
    """The ``n`` equally spaced probability levels 0, 1/(n-1), ..., 1 the reference is given at."""
    if n < 2:
        raise ValueError(f"a reference needs at least 2 quantiles, got {n}")
    return np.linspace(0.0, 1.0, n)


def image_quantiles(images: np.ndarray, n: int) -> np.ndarray:
    """(N, n) quantiles (numpy's default linear method) of each image of a batch (N, ...)."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return np.asarray(np.quantile(x, quantile_levels(n), axis=1).T)


def match_quantiles(images: np.ndarray, reference: Sequence[float]) -> np.ndarray:
    """Map each image of (N, ...) piecewise-linearly so its quantiles become ``reference``.

    The image's own quantiles at :func:`quantile_levels` ``(len(reference))`` are the knots, the
    reference values their targets; values beyond the image's min/max cannot occur. Tied knots (a flat
    histogram, e.g. a black border covering 10% of the image) are merged and map to the mean of their
    targets; a constant image maps to the reference median. Returns float32 of the input's shape.
    """
    ref = np.asarray(reference, dtype=np.float64)
    x = np.asarray(images)
    q = image_quantiles(x, len(ref))
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(len(x)):
        knots, inverse = np.unique(q[i], return_inverse=True)
        targets = np.bincount(inverse, weights=ref) / np.bincount(inverse)
        if len(knots) == 1:
            out[i] = np.median(ref)
        else:
            out[i] = np.interp(np.asarray(x[i], dtype=np.float64), knots, targets)
    return out
