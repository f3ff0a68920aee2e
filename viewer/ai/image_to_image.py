"""Running an image-to-image model (``task = "image-to-image"``, e.g. a denoiser) tile by tile.

A slice of any size is cut into tiles of the manifest's fixed ``[input] tile`` shape (so a GPU provider
never sees a new shape), neighbouring tiles sharing ``tile_overlap`` pixels; each output tile is weighted
by a ramp that falls to (almost) zero across the overlap (:func:`blend_weights`), and the weighted sum is
divided by the summed weights, so tile seams do not show. The overlap must cover the network's
receptive field radius (twice that, for the outer half to be discarded). A slice smaller than a tile is padded by reflection. The
manifest's preprocessing is affine (``scale`` fixed without clip, ``normalize``), and its inverse maps the
network output back to modality units (HU for CT).

Synchronous, with ``progress(done, total)`` / ``cancel()`` callbacks like :mod:`viewer.ai.runner`; ``ui``
runs it in a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from viewer.ai.errors import Cancelled
from viewer.ai.manifest import Manifest
from viewer.ai.preprocess import Op
from viewer.ai.runner import window_starts
from viewer.ai.session import ModelSession
from viewer.core.volume import Volume

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


def affine_of(ops: Sequence[Op]) -> tuple[float, float]:
    """(a, b) with network input = a * value + b, composed from the manifest's affine steps."""
    a, b = 1.0, 0.0
    for op in ops:
        p = op.params
        if op.name == "scale":
            span = float(p["high"]) - float(p["low"])
            a, b = a / span, (b - float(p["low"])) / span
        elif op.name == "normalize":
            mean, std = float(p["mean"][0]), float(p["std"][0])
            a, b = a / std, (b - mean) / std
        else:  # the manifest refuses these for image-to-image models
            raise ValueError(f"{op.name} is not an affine step")
    return a, b


# Weight of a tile's outermost pixels: not 0, so an image border (covered by one tile only) still gets a
# value, but small enough that a neighbouring tile's interior answer wins wherever there is one.
EDGE_WEIGHT = 1e-6


def blend_weights(tile: tuple[int, int], overlap: int) -> np.ndarray:
    """(rows, columns) weights: 1 inside; across the ``overlap`` pixels at each edge, ``EDGE_WEIGHT`` for
    the outer half (where the network saw the tile's zero padding) and a linear ramp up to 1 over the
    inner half. Neighbouring tiles share 2 x ``overlap`` pixels, so every seam pixel has one tile at
    full weight and the other fading out."""
    def ramp(n: int) -> np.ndarray:
        w = np.ones(n, dtype=np.float64)
        if overlap > 0:
            half = overlap / 2.0
            r = np.clip((np.arange(overlap) + 0.5 - half) / half, EDGE_WEIGHT, 1.0)
            w[:overlap] = np.minimum(w[:overlap], r)
            w[n - overlap:] = np.minimum(w[n - overlap:], r[::-1])
        return w
    return np.outer(ramp(tile[0]), ramp(tile[1]))


def run_tiled(session: ModelSession, images: np.ndarray, *, progress: Progress | None = None,
              cancel: Cancel | None = None) -> np.ndarray:
    """Apply the model to (N, rows, columns) images in modality units; returns float32 of the same shape,
    in modality units."""
    m: Manifest = session.manifest
    if m.input.tile is None:
        raise ValueError(f"{m.id} is not an image-to-image model (no [input] tile)")
    th, tw = m.input.tile
    ov = m.input.tile_overlap
    a, b = affine_of(m.preprocess)
    imgs = np.asarray(images)
    n, h, w = imgs.shape
    ph, pw = max(0, th - h), max(0, tw - w)
    rows = window_starts(h + ph, th, th - 2 * ov if th > 2 * ov else th)
    cols = window_starts(w + pw, tw, tw - 2 * ov if tw > 2 * ov else tw)
    weight = blend_weights((th, tw), ov)
    out = np.empty((n, h, w), dtype=np.float32)
    total = n * len(rows) * len(cols)
    done = 0
    for k in range(n):
        if cancel is not None and cancel():
            raise Cancelled()
        x = imgs[k].astype(np.float32) * np.float32(a) + np.float32(b)
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
        tiles = np.stack([x[r:r + th, c:c + tw] for r in rows for c in cols])[:, None]
        y = session.run(tiles, cancel=cancel)[:, 0]
        acc = np.zeros(x.shape, dtype=np.float64)
        wsum = np.zeros(x.shape, dtype=np.float64)
        for t, (r, c) in enumerate((r, c) for r in rows for c in cols):
            acc[r:r + th, c:c + tw] += y[t] * weight
            wsum[r:r + th, c:c + tw] += weight
        out[k] = ((acc / wsum)[:h, :w] - b) / a
        done += len(rows) * len(cols)
        if progress is not None:
            progress(done, total)
    return out


def run_on_volume(session: ModelSession, volume: Volume, slices: Sequence[int] | None = None, *,
                  progress: Progress | None = None, cancel: Cancel | None = None) -> np.ndarray:
    """The model's output for slices ``slices`` (default all) of ``volume``: float32 (n, rows, columns)."""
    idx = list(range(volume.shape[0])) if slices is None else [int(i) for i in slices]
    if volume.is_color:
        raise ValueError(f"{session.manifest.id} takes greyscale images; this series is colour")
    return run_tiled(session, volume.array[idx], progress=progress, cancel=cancel)
