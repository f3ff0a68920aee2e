"""Background work for the UI: plain synchronous functions run on a ``QThreadPool``.

Slow work (scanning, loading, thumbnails) is an ordinary function below ``ui`` that takes ``progress``
and ``cancel`` callbacks. :class:`Background` runs it on a pool thread and delivers its progress, partial
results, result or error back on the main thread through *queued* signals, so every widget is touched
only by the main thread.

Each request belongs to a *channel* (e.g. ``"scan"`` or ``"load:0"`` for viewport 0) and carries an
increasing id. Submitting a new request on a channel cancels the previous one cooperatively and any
result that still arrives for it is dropped: scrolling or clicking fast never shows a stale series.

The job function has the signature ``fn(ctx: JobContext) -> object``; ``ctx.progress(done, total)``,
``ctx.cancelled()`` and ``ctx.partial(payload)`` are safe to call from the pool thread.

Python's cycle collector must not run on a pool thread (a collection there that frees a Qt object runs its
C++ destructor on that thread, which can deadlock against the main thread): ``viewer.app`` turns automatic
collection off and collects on the main thread.
"""

from __future__ import annotations

import dataclasses
import queue
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

# One Cancelled for every layer (io's LoadCancelled and the AI runner's are this class).
from viewer.core.jobs import Cancelled as Cancelled
from viewer.core.jobs import CancelFlag, Job, JobContext
from viewer.core.volume import Volume
# Re-exported: the composition root builds it.
from viewer.state.services import IoServices as IoServices

# Progress is throttled in the worker: a scan of 10,000 files must not post 10,000 events to the UI.
PROGRESS_INTERVAL_S = 0.03


class PoolJobContext(CancelFlag):
    """The :class:`~viewer.core.jobs.JobContext` of a job on the pool: safe to call from its thread."""

    def __init__(self, request_id: int, signals: _Signals) -> None:
        super().__init__()
        self.request_id = request_id
        self._signals = signals
        self._last_progress = 0.0

    def progress(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` units; throttled, the final call always goes through."""
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self._signals.progress.emit(self.request_id, int(done), int(total))

    def partial(self, payload: object) -> None:
        """Deliver an intermediate result (a first slice, a series found) to the main thread."""
        if not self._cancel.is_set():
            self._signals.partial.emit(self.request_id, payload)


class _Signals(QObject):
    progress = Signal(int, int, int)
    partial = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)
    done = Signal(int)


class _Task(QRunnable):
    def __init__(self, fn: Job, ctx: PoolJobContext, signals: _Signals) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._fn = fn
        self._ctx = ctx
        self._signals = signals

    def run(self) -> None:  # noqa: D401 - Qt override, runs on a pool thread
        rid = self._ctx.request_id
        try:
            if self._ctx.cancelled():
                return
            result = self._fn(self._ctx)
        except Cancelled:
            pass
        except Exception as exc:  # noqa: BLE001 - every failure goes to the UI as text, never kills the app
            message = str(exc) or type(exc).__name__
            if not isinstance(exc, (OSError, ValueError, KeyError)) and type(exc).__name__ != "LoadError":
                # An unexpected type is a bug somewhere below: keep the type and origin for the report.
                message = f"{type(exc).__name__}: {message}\n{traceback.format_exc(limit=3)}"
            self._signals.failed.emit(rid, message)
        else:
            if not self._ctx.cancelled():
                self._signals.finished.emit(rid, result)
        finally:
            self._signals.done.emit(rid)


@dataclass
class _Request:
    channel: str
    ctx: PoolJobContext
    on_result: Callable[[Any], None] | None
    on_error: Callable[[str], None] | None
    on_progress: Callable[[int, int], None] | None
    on_partial: Callable[[Any], None] | None
    on_done: Callable[[], None] | None
    started: float = field(default_factory=time.monotonic)


class Background(QObject):
    """Runs jobs on a thread pool; one current request per channel; stale results are dropped.

    Parameters
    ----------
    pool
        The pool to run on; a private one with ``max_threads`` threads when None. Two threads suit the
        2-core target machines: one scan/thumbnail job and one load can run side by side.
    """

    busy_changed = Signal(bool)

    def __init__(self, pool: QThreadPool | None = None, max_threads: int = 2,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(max_threads)
        self.pool = pool
        self._next_id = 0
        self._requests: dict[int, _Request] = {}
        self._current: dict[str, int] = {}
        # The signal object lives in this (main) thread; queued connections make every slot below run
        # on the main thread whatever thread emits.
        self._signals = _Signals()
        self._signals.progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._signals.partial.connect(self._on_partial, Qt.ConnectionType.QueuedConnection)
        self._signals.finished.connect(self._on_finished, Qt.ConnectionType.QueuedConnection)
        self._signals.failed.connect(self._on_failed, Qt.ConnectionType.QueuedConnection)
        self._signals.done.connect(self._on_done, Qt.ConnectionType.QueuedConnection)

    # -- public -------------------------------------------------------------------------------------------
    def submit(self, channel: str, fn: Job, *,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[str], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_done: Callable[[], None] | None = None,
               replace: bool = True) -> int:
        """Run ``fn(ctx)`` in the background and return the request id.

        With ``replace`` (default) the channel's previous request is cancelled and its late results are
        dropped. Callbacks run on the main thread, only for the channel's current request (``replace``)
        or for every request of the channel (``replace=False``, e.g. a queue of thumbnails).
        """
        self._next_id += 1
        rid = self._next_id
        if replace:
            self.cancel(channel)
        ctx = PoolJobContext(rid, self._signals)
        self._requests[rid] = _Request(channel, ctx, on_result, on_error, on_progress, on_partial, on_done)
        if replace:
            self._current[channel] = rid
        was_idle = len(self._requests) == 1
        self.pool.start(_Task(fn, ctx, self._signals))
        if was_idle:
            self.busy_changed.emit(True)
        return rid

    def cancel(self, channel: str) -> None:
        """Cancel every pending request of ``channel`` (their results will be dropped)."""
        for req in self._requests.values():
            if req.channel == channel:
                req.ctx.cancel()
        self._current.pop(channel, None)

    def cancel_all(self) -> None:
        for req in self._requests.values():
            req.ctx.cancel()
        self._current.clear()

    def is_current(self, request_id: int) -> bool:
        req = self._requests.get(request_id)
        return req is not None and not req.ctx.cancelled()

    def pending(self, channel: str | None = None) -> int:
        """How many requests (of ``channel``, or all) have not finished yet."""
        return sum(1 for r in self._requests.values() if channel is None or r.channel == channel)

    def wait_idle(self, timeout_ms: int = -1) -> bool:
        """Block until the pool has no running job (for shutdown and headless commands)."""
        return self.pool.waitForDone(timeout_ms)

    # -- main-thread delivery -----------------------------------------------------------------------------
    def _live(self, rid: int) -> _Request | None:
        req = self._requests.get(rid)
        if req is None or req.ctx.cancelled():
            return None
        return req

    @Slot(int, int, int)
    def _on_progress(self, rid: int, done: int, total: int) -> None:
        req = self._live(rid)
        if req is not None and req.on_progress is not None:
            req.on_progress(done, total)

    @Slot(int, object)
    def _on_partial(self, rid: int, payload: object) -> None:
        req = self._live(rid)
        if req is not None and req.on_partial is not None:
            req.on_partial(payload)

    @Slot(int, object)
    def _on_finished(self, rid: int, result: object) -> None:
        req = self._live(rid)
        if req is not None and req.on_result is not None:
            req.on_result(result)

    @Slot(int, str)
    def _on_failed(self, rid: int, message: str) -> None:
        req = self._live(rid)
        if req is not None and req.on_error is not None:
            req.on_error(message)

    @Slot(int)
    def _on_done(self, rid: int) -> None:
        req = self._requests.pop(rid, None)
        if req is None:
            return
        if self._current.get(req.channel) == rid:
            del self._current[req.channel]
        if req.on_done is not None and not req.ctx.cancelled():
            req.on_done()
        if not self._requests:
            self.busy_changed.emit(False)


# -- the jobs the shell runs --------------------------------------------------------------------------------
# ui may not import viewer.io (it would pull pydicom into ui, which the import contracts forbid): the
# composition root (viewer.app) hands the io functions in as an IoServices.


@dataclass
class Preview:
    """The first slice of a series being loaded: a one-slice volume, shown before the rest arrives."""

    volume: Volume  # one slice, its affine placed at that slice
    index: int  # the slice's index k in the whole volume (-1 when unknown)
    total: int  # slices (or files) in the whole series


@dataclass
class Filling:
    """The whole volume while it is being decoded: ``ready[k]`` says slice k holds its values (the
    others are zeros). Posted when the loader hands out the array and then as slices arrive (at most
    every :data:`FILLING_INTERVAL_S`); ``ready`` is a copy, the volume's array is the one being filled."""

    volume: Volume  # the volume whose array the loader is filling
    ready: np.ndarray  # bool, one per slice


#: Seconds between two Filling posts of one load (the viewport re-renders on each).
FILLING_INTERVAL_S = 0.05


def scan_job(io: IoServices, paths: list[str]) -> Job:
    """A job that indexes ``paths`` with ``viewer.io.series.find_stacks``, reporting progress."""

    def job(ctx: JobContext) -> object:
        # Series appear in the browser as the scanner finds them (on_stack).
        return io.find_stacks(paths, progress=ctx.progress, cancel=ctx.cancelled, on_stack=ctx.partial)

    return job


def middle_file(files: list[str]) -> str:
    """The file shown as a series' preview and thumbnail.

    The scanner's file order is not guaranteed to follow the slice position; the loader sorts. For the
    preview we take the middle of the list, which for files named or listed in acquisition order is the
    middle of the volume and is in any case one real slice of the series.
    """
    return files[len(files) // 2]


def load_job(io: IoServices, files: list[str], *, series_uid: str = "",
             warnings: list[str] | None = None, records: Sequence[Any] | None = None) -> Job:
    """A job that loads a stack of ``files`` into a Volume, posting a one-slice :class:`Preview` first.

    With ``io.series_loader`` the headers and geometry are read first and the middle slice is decoded
    before any other, so the viewport has an image after one header pass and one decode, whatever the
    series length; the full volume follows as the result. Without it, one file is loaded alone first.
    ``records`` are the scanner's header records of ``files``: the loader then reads each file's pixels
    without parsing its header a second time (a file changed since the scan is read in full).
    """

    def job(ctx: JobContext) -> object:
        if io.series_loader is None:
            return _load_two_steps(io, files, ctx)
        loader = io.series_loader(list(files), series_uid=series_uid, progress=ctx.progress,
                                  cancel=ctx.cancelled, records=records)
        info = loader.series_info()
        total = int(loader.shape[0])

        def first_slice(k: int, values: np.ndarray) -> None:
            affine = np.array(loader.affine, dtype=np.float64)
            affine[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, float(k)]) + affine[:3, 3]
            # The preview's one slice keeps the series' windows (opening window, per-slice span).
            one = Volume(np.array(values)[None], affine, loader.modality, loader.series_uid,
                         dataclasses.replace(info, slices=info.slices[k:k + 1]))
            ctx.partial(Preview(one, int(k), total))

        ctx.check()
        # Decode the first slice alone, before the pooled load starts: for compressed series the pool's
        # decoders would otherwise compete with it for the two cores (J2K CT: ~70 ms instead of ~200 ms
        # to the first image, benchmarks/bench_first_image.py). It costs one extra decode in total.
        k = int(loader.first_index)
        first_slice(k, loader.read_slice(k))
        ctx.check()
        filling: list[Any] = []  # [volume, ready mask, time of the last post]

        def on_slices(arr: np.ndarray, ks: list[int]) -> None:
            if not filling or filling[0].array is not arr:
                vol = Volume(arr, np.array(loader.affine, dtype=np.float64), loader.modality, loader.series_uid,
                             info)
                filling[:] = [vol, np.zeros(arr.shape[0], dtype=bool), 0.0]
            filling[1][ks] = True
            now = time.perf_counter()
            if now - filling[2] >= FILLING_INTERVAL_S or filling[1].all():
                filling[2] = now
                ctx.partial(Filling(filling[0], filling[1].copy()))

        volume = loader.load(progress=ctx.progress, cancel=ctx.cancelled,
                             on_slices=on_slices if total > 1 else None)
        volume.warnings = list(warnings or []) + list(volume.warnings)
        return volume

    return job


#: A series arriving from a PACS: what is stored is decoded every ARRIVAL_INTERVAL_S, in one batch (one
#: header pass, few wake-ups competing with the retrieve's threads); snapshots are posted as often at first,
#: and each one posted makes the next ARRIVAL_INTERVAL_GROWTH times later, up to ARRIVAL_INTERVAL_MAX_S: the
#: first images fill in quickly, and a long retrieve is not slowed by a redraw every 150 ms (5-10 ms of the
#: UI thread each, competing for the GIL with the retrieve).
ARRIVAL_INTERVAL_S = 0.15
ARRIVAL_INTERVAL_GROWTH = 1.5
ARRIVAL_INTERVAL_MAX_S = 0.6


def arrival_job(io: IoServices, feed: queue.Queue[str | None], total: Callable[[], int], *,
                series_uid: str = "", consumed: list[int] | None = None) -> Job:
    """A job that decodes the files of a series as a retrieve stores them, posts what has arrived, and
    returns the whole Volume once every instance expected is there (or the retrieve has ended).

    ``feed`` gives the stored paths, then None when the retrieve has ended; ``total()`` the instances
    expected (-1 while unknown). Each file is decoded once, what is stored within
    :data:`ARRIVAL_INTERVAL_S` in one batch; the growing volume (``ArrivedLike``) is posted as a partial
    result at once for the first instance (the first image on screen), then after intervals that
    lengthen. The result is the whole load of every file fed (:func:`whole_load_job`'s), made of the decoded
    slices when they are exactly its slices. When ``total()`` files have arrived it is returned at once,
    without waiting for the retrieve's end (its folder sync and indexing); ``consumed[0]`` then says how
    many files it holds, so that the caller can load again if more arrive after all.
    """

    def job(ctx: JobContext) -> object:
        if io.arriving_series is None:
            raise ValueError("this build cannot show a series while it arrives")
        series = io.arriving_series()
        posted, decoded, shown = 0, 0.0, 0.0  # slices posted; when the last batch was decoded, posted
        interval = ARRIVAL_INTERVAL_S  # until the next snapshot
        files: list[str] = []
        pending: list[str] = []  # stored, to decode in one batch when the interval is up
        while True:
            now = time.perf_counter()
            if pending:
                wait = decoded + ARRIVAL_INTERVAL_S - now
            elif len(series) > posted:
                wait = shown + interval - now
            else:
                wait = ARRIVAL_INTERVAL_S
            try:
                path = feed.get(timeout=max(wait, 0.001))
            except queue.Empty:
                path = ""  # nothing new: what the interval held back is decoded and posted now
            ctx.check()
            if path:
                pending.append(path)
            while posted and path is not None:  # after the first image: all stored meanwhile
                try:
                    path = feed.get_nowait()
                except queue.Empty:
                    break
                if path is not None:
                    pending.append(path)
            expected = total()
            last_ones = expected > 0 and len(files) + len(pending) >= expected
            now = time.perf_counter()
            if pending and (posted == 0 or path is None or last_ones or now - decoded >= ARRIVAL_INTERVAL_S):
                files += pending
                series.add(pending)
                pending, decoded = [], now
            if path is None or (last_ones and not pending):
                if path is not None and consumed is not None:
                    consumed[0] = len(files)
                if io.series_loader is None:
                    return io.load_series(files, progress=ctx.progress, cancel=ctx.cancelled)
                loader = io.series_loader(files, series_uid=series_uid, progress=ctx.progress,
                                          cancel=ctx.cancelled)
                volume = series.whole(loader)
                return volume if volume is not None else loader.load(progress=ctx.progress, cancel=ctx.cancelled)
            if len(series) > posted and (posted == 0 or now - shown >= interval):
                snapshot = series.snapshot(expected)
                if snapshot is not None:
                    ctx.partial(snapshot)
                    interval = ARRIVAL_INTERVAL_S if posted == 0 else min(interval * ARRIVAL_INTERVAL_GROWTH,
                                                                          ARRIVAL_INTERVAL_MAX_S)
                posted, shown = len(series), time.perf_counter()

    return job


def whole_load_job(io: IoServices, files: list[str], *, series_uid: str = "") -> Job:
    """A job that loads ``files`` into a Volume without previews (it refines a preview already shown)."""

    def job(ctx: JobContext) -> object:
        if io.series_loader is None:
            return io.load_series(list(files), progress=ctx.progress, cancel=ctx.cancelled)
        loader = io.series_loader(list(files), series_uid=series_uid, progress=ctx.progress, cancel=ctx.cancelled)
        return loader.load(progress=ctx.progress, cancel=ctx.cancelled)

    return job


def _load_two_steps(io: IoServices, files: list[str], ctx: JobContext) -> object:
    if len(files) > 1:
        try:
            first = io.load_series([middle_file(files)])
        except Exception:  # noqa: BLE001 - a broken middle file must not stop the real load
            first = None
        if first is not None:
            ctx.partial(Preview(first, -1, len(files)))
    ctx.check()
    return io.load_series(list(files), progress=ctx.progress, cancel=ctx.cancelled)


def file_window(volume: Volume) -> tuple[float, float]:
    """(center, width) to open ``volume`` with: the file's VOI window, else the modality default."""
    from viewer.state.image import opening_window

    return opening_window(volume)


def is_monochrome1(volume: Volume) -> bool:
    from viewer.state.image import is_monochrome1 as impl

    return impl(volume)


def thumbnail_image(volume: Volume, size: int) -> np.ndarray:
    """The middle slice of ``volume`` as a windowed uint8 (h, w) or (h, w, 3) array of about ``size`` px."""
    from viewer.core.windowing import window_to_uint8

    img = volume.array[volume.array.shape[0] // 2]
    step = max(1, int(np.ceil(max(img.shape[0], img.shape[1]) / size)))
    img = img[::step, ::step]
    if volume.is_color:
        return np.ascontiguousarray(img.astype(np.uint8))
    c, w = file_window(volume)
    return window_to_uint8(img, c, w, invert=is_monochrome1(volume))


def thumbnail_job(io: IoServices, files: list[str], size: int = 96) -> Job:
    """A job that makes a windowed uint8 thumbnail (h, w) or (h, w, 3) of the middle slice of ``files``.

    With ``io.thumbnail`` the decoding runs in a separate process: compressed decoders hold the GIL for
    tens of milliseconds per slice, which would stall the UI thread if done on a pool thread.
    """

    def job(ctx: JobContext) -> object:
        if io.thumbnail is not None:
            return io.thumbnail([middle_file(files)], size)
        vol = io.load_series([middle_file(files)])
        ctx.check()
        return thumbnail_image(vol, size)

    return job
