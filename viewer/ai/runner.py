"""Running classifiers: batches with progress and cancel, slices of a volume, a box, a sliding window,
occlusion sensitivity, and the request-id gate that drops stale results.

Every function here is synchronous and takes ``progress(done, total)`` and ``cancel() -> bool``
callbacks; ``ui`` runs them on worker threads. Cancelling raises :class:`~viewer.ai.errors.Cancelled`.
Images are in modality units (HU for CT) in (rows, columns) order; boxes are
``(row0, col0, row1, col1)`` in pixels, half-open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.ai.errors import Cancelled
from viewer.ai.preprocess import Context, run_ops
# The result records live in viewer.ai.results (no onnxruntime there: ui names them); re-exported.
from viewer.ai.results import ClassMap as ClassMap
from viewer.ai.results import OcclusionMap as OcclusionMap
from viewer.ai.results import Predictions as Predictions
from viewer.ai.session import ModelSession
from viewer.core.crop import crop_box
from viewer.core.volume import Volume

PREPROCESS_CHUNK = 4
Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


def activate(scores: np.ndarray, activation: str) -> np.ndarray:
    """Probabilities from raw outputs (N, K): ``softmax`` over K (max-shifted), ``sigmoid`` per class, or
    ``none`` (the network already outputs probabilities)."""
    s = np.asarray(scores, dtype=np.float32)
    if activation == "softmax":
        e = np.exp(s - s.max(axis=1, keepdims=True))
        soft: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return soft
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-s))).astype(np.float32)
    if activation == "none":
        return s.copy()
    raise ValueError(f"unknown activation {activation!r}")


def _predictions(session: ModelSession, scores: np.ndarray, indices: np.ndarray | None = None) -> Predictions:
    m = session.manifest
    return Predictions(activate(scores, m.output.activation), np.asarray(scores, dtype=np.float32), m.output.labels,
                       indices, m.id, m.version, m.name, session.provider, m.output.threshold, m.output.bias)


def context_of(volume: Volume) -> Context:
    """The preprocessing :class:`~viewer.ai.preprocess.Context` (window, MONOCHROME1) of a volume."""
    return Context.of(volume.info, volume.modality)


def classify(session: ModelSession, images: np.ndarray, *, context: Context | None = None,
             progress: Progress | None = None, cancel: Cancel | None = None) -> Predictions:
    """Preprocess and classify a batch of images.

    Parameters
    ----------
    images
        (N, H, W) grey or (N, H, W, 3) RGB in modality units (a list of equally sized images works too).
    context
        The series' window and photometric interpretation (:func:`context_of`); needed by
        ``window source="dicom"`` and ``invert_monochrome1``.
    progress, cancel
        Called between batches of ``session.batch_size`` images (preprocessing is done batch by batch,
        so memory stays bounded and cancel is answered within one batch).
    """
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    n = images.shape[0]
    ops = session.manifest.preprocess
    chunk = session.batch_size if n > 1 else 1
    outs = []
    for start in range(0, n, chunk):
        if cancel is not None and cancel():
            raise Cancelled()
        # Preprocess a few slices at a time: 512x512 float32 intermediates of a few slices stay in cache,
        # those of a whole network batch (64) do not, and the ops are memory-bound.
        stop = min(start + chunk, n)
        parts = [run_ops(ops, images[i:min(i + PREPROCESS_CHUNK, stop)], context)
                 for i in range(start, stop, PREPROCESS_CHUNK)]
        outs.append(session.run(parts[0] if len(parts) == 1 else np.concatenate(parts)))
        if progress is not None:
            progress(min(start + chunk, n), n)
    scores = np.concatenate(outs) if outs else np.zeros((0, len(session.manifest.output.labels)), np.float32)
    return _predictions(session, scores)


def classify_slices(session: ModelSession, volume: Volume, slices: Sequence[int] | None = None, *,
                    progress: Progress | None = None, cancel: Cancel | None = None) -> Predictions:
    """Classify whole slices ``slices`` (z indices; default all) of ``volume``; ``indices`` records them."""
    idx = np.arange(volume.shape[0]) if slices is None else np.asarray(list(slices), dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= volume.shape[0]):
        raise IndexError(f"slice indices must be in 0..{volume.shape[0] - 1}")
    ctx = context_of(volume)
    chunk = session.batch_size
    parts: list[Predictions] = []
    for start in range(0, len(idx), chunk):
        sel = idx[start:start + chunk]
        contiguous = len(sel) > 0 and np.array_equal(sel, np.arange(sel[0], sel[0] + len(sel)))
        images = volume.array[int(sel[0]):int(sel[0]) + len(sel)] if contiguous else volume.array[sel]
        parts.append(classify(session, images, context=ctx, cancel=cancel))
        if progress is not None:
            progress(min(start + chunk, len(idx)), len(idx))
    scores = np.concatenate([p.scores for p in parts]) if parts else np.zeros((0, len(session.manifest.output.labels)),
                                                                              np.float32)
    return _predictions(session, scores, idx)


def classify_box(session: ModelSession, volume: Volume, k: int, box: Sequence[int]) -> Predictions:
    """Classify the box ``(row0, col0, row1, col1)`` (pixels, half-open) of slice ``k``."""
    if not 0 <= k < volume.shape[0]:
        raise IndexError(f"slice {k} is outside 0..{volume.shape[0] - 1}")
    patch = crop_box(volume.array[k], box)
    p = classify(session, patch[None], context=context_of(volume))
    p.indices = np.array([k])
    return p


def window_starts(length: int, window: int, stride: int) -> np.ndarray:
    """Start offsets of windows of ``window`` pixels every ``stride`` pixels covering ``length`` pixels.

    The last window is moved back to end exactly at the edge, so every pixel is covered and no window
    leaves the image (``0, s, 2s, ..., length - window``).
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1 pixel, got {window} and {stride}")
    if window > length:
        raise ValueError(f"window of {window} pixels is larger than the image ({length} pixels)")
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return np.asarray(starts, dtype=np.int64)


def _pixels(size_px: Sequence[int] | None, size_mm: Sequence[float] | None, spacing_rc: tuple[float, float],
            what: str) -> tuple[int, int] | None:
    if size_px is not None and size_mm is not None:
        raise ValueError(f"give the {what} in pixels or in mm, not both")
    if size_px is not None:
        return int(size_px[0]), int(size_px[1])
    if size_mm is not None:
        return (max(1, int(round(size_mm[0] / spacing_rc[0]))), max(1, int(round(size_mm[1] / spacing_rc[1]))))
    return None


def sliding_window_map(session: ModelSession, volume: Volume, k: int, *, window: Sequence[int] | None = None,
                       window_mm: Sequence[float] | None = None, stride: Sequence[int] | None = None,
                       stride_mm: Sequence[float] | None = None, progress: Progress | None = None,
                       cancel: Cancel | None = None) -> ClassMap:
    """Slide a window over slice ``k`` and classify every position (for ``scope = "roi"`` models).

    Parameters
    ----------
    window, window_mm
        Window (rows, columns) in pixels or in mm (converted with the volume's row/column spacing).
        Default: the manifest's ``applies_to.roi_size_mm``, else the network's input size in pixels.
    stride, stride_mm
        Step between positions, pixels or mm. Default: half the window.
    """
    if not 0 <= k < volume.shape[0]:
        raise IndexError(f"slice {k} is outside 0..{volume.shape[0] - 1}")
    col_mm, row_mm, _ = volume.spacing
    spacing_rc = (row_mm, col_mm)
    win = _pixels(window, window_mm, spacing_rc, "window")
    if win is None:
        roi_mm = session.manifest.applies_to.roi_size_mm
        win = _pixels(None, roi_mm, spacing_rc, "window") if roi_mm else session.input_hw()
    if win is None:
        raise ValueError("the model gives no window size (roi_size_mm or a fixed input size): pass window=")
    st = _pixels(stride, stride_mm, spacing_rc, "stride") or (max(1, win[0] // 2), max(1, win[1] // 2))
    image = volume.array[k]
    rows = window_starts(image.shape[0], win[0], st[0])
    cols = window_starts(image.shape[1], win[1], st[1])
    patches = np.stack([image[r:r + win[0], c:c + win[1]] for r in rows for c in cols])
    p = classify(session, patches, context=context_of(volume), progress=progress, cancel=cancel)
    probs = p.probabilities.reshape(len(rows), len(cols), -1)
    m = session.manifest
    return ClassMap(rows, cols, win, st, probs, m.output.labels, m.id, m.version, m.name, session.provider)


def occlusion_map(session: ModelSession, image: np.ndarray, *, context: Context | None = None,
                  patch: Sequence[int] | None = None, stride: Sequence[int] | None = None,
                  fill: float | None = None, target: int | None = None, progress: Progress | None = None,
                  cancel: Cancel | None = None) -> OcclusionMap:
    """Occlusion sensitivity (Zeiler & Fergus 2014) of any classifier on one image.

    Each patch position gets a copy of ``image`` with that patch set to ``fill``; the copies go through
    preprocessing and the network in full batches (fast on a GPU).

    Parameters
    ----------
    image
        (rows, columns) or (rows, columns, 3), modality units.
    patch
        Patch (rows, columns) in pixels; default 1/8 of each side (at least 1).
    stride
        Default half the patch.
    fill
        Value (modality units) of an occluded pixel; default the image's minimum (e.g. air in CT).
    target
        Class to explain; default the top class of the unoccluded image.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    ph, pw = (int(patch[0]), int(patch[1])) if patch is not None else (max(1, h // 8), max(1, w // 8))
    sh, sw = (int(stride[0]), int(stride[1])) if stride is not None else (max(1, ph // 2), max(1, pw // 2))
    rows, cols = window_starts(h, ph, sh), window_starts(w, pw, sw)
    fill_v = float(img.min()) if fill is None else float(fill)
    base = classify(session, img[None], context=context)
    t = int(base.top_index[0]) if target is None else int(target)
    if not 0 <= t < len(base.labels):
        raise ValueError(f"target class {t} is outside 0..{len(base.labels) - 1}")
    base_p = float(base.probabilities[0, t])
    positions = [(r, c) for r in rows for c in cols]
    drops = np.empty(len(positions), dtype=np.float32)
    b = session.batch_size
    ops = session.manifest.preprocess
    for start in range(0, len(positions), b):
        if cancel is not None and cancel():
            raise Cancelled()
        pos = positions[start:start + b]
        batch = np.repeat(img[None], len(pos), axis=0)
        for i, (r, c) in enumerate(pos):
            batch[i, r:r + ph, c:c + pw] = fill_v
        probs = activate(session.run(run_ops(ops, batch, context)), session.manifest.output.activation)
        drops[start:start + len(pos)] = base_p - probs[:, t]
        if progress is not None:
            progress(min(start + b, len(positions)), len(positions))
    total = np.zeros((h, w), dtype=np.float64)
    count = np.zeros((h, w), dtype=np.float64)
    for (r, c), d in zip(positions, drops):
        total[r:r + ph, c:c + pw] += d
        count[r:r + ph, c:c + pw] += 1.0
    heat = (total / np.maximum(count, 1.0)).astype(np.float32)
    m = session.manifest
    return OcclusionMap(heat, t, m.output.labels[t], base_p, (ph, pw), (sh, sw), fill_v, m.id, m.version, m.name,
                        session.provider)


@dataclass
class LatestOnly:
    """A generation counter so that only the newest request's result is used.

    Each new request calls :meth:`next` and carries the returned id; when its result arrives,
    :meth:`is_current` says whether it still matters (scrolling fast makes older slices stale).
    :meth:`cancel_for` gives a ``cancel`` callback that turns True as soon as a newer request exists, so
    stale work also stops early. Thread-safe.
    """

    _generation: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next(self) -> int:
        """Start a new request; every earlier id becomes stale."""
        with self._lock:
            self._generation += 1
            return self._generation

    @property
    def current(self) -> int:
        return self._generation

    def is_current(self, request_id: int) -> bool:
        return request_id == self._generation

    def invalidate(self) -> None:
        """Make every outstanding request stale (e.g. the series was closed)."""
        self.next()

    def cancel_for(self, request_id: int) -> Cancel:
        return lambda: request_id != self._generation

    def deliver(self, request_id: int, result: Any, callback: Callable[[Any], None]) -> bool:
        """Call ``callback(result)`` only if ``request_id`` is still current; True when delivered."""
        if not self.is_current(request_id):
            return False
        callback(result)
        return True
