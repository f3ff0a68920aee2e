"""Reading the pixels a :class:`~viewer.io.plan.VolumePlan` names into one array, in modality units.

Uncompressed 16-bit slices are read straight from their file offset into the volume (``preadv``) by this
thread and one helper (reading and the numpy rescale release the GIL). Compressed files are decoded by a
process pool (decoders hold the GIL; :mod:`viewer.io.decode_pool`) with the calling process stealing work,
so both cores are used; on Linux the pool's workers write their slices straight into a volume in shared
memory (/dev/shm) instead of sending them back pickled. The middle slice (``plan.first_index``) is read
before any other and the rest follow from the middle outwards.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from viewer.core.jobs import CancelCheck, Progress
from viewer.io import decode_pool
from viewer.io.decode_pool import NeedsFloat, SharedFailed, SharedSlices, StoreSpec, store_into
from viewer.io.errors import LoadCancelled
from viewer.io.pixels import fix_stored_bits, rescale_fits_int16, rescale_into
from viewer.io.plan import PlannedSlice, VolumePlan
from viewer.io.rawread import read_pixels_fast

FirstSlice = Callable[[int, np.ndarray], None]
#: on_slices(volume, ks): slices ks of ``volume`` (the array being filled) now hold their values.
SlicesReady = Callable[[np.ndarray, list[int]], None]
# Below this many compressed files, the pool's start-up costs more than it saves.
POOL_MIN_FILES = 6


class PixelReader:
    """Executes one :class:`~viewer.io.plan.VolumePlan`: :meth:`read` fills a new array, :meth:`read_slice`
    decodes one slice alone (previews).

    ``decode_in_pool``: compressed pixels are decoded only in the process pool (the app: its UI thread
    shares this process, and decoders hold the GIL). ``shared_ok``: False once shared memory failed (the
    pool's workers then send slices back pickled). ``dtype`` starts as the plan's and turns float32 for
    good when a slice's values leave int16.
    """

    def __init__(self, plan: VolumePlan, *, decode_in_pool: bool = False, shared_ok: bool = True) -> None:
        self.plan = plan
        self.dtype: np.dtype[Any] = plan.dtype
        self.decode_in_pool = decode_in_pool
        self.shared_ok = shared_ok
        self._spec = StoreSpec(plan.all_fit, plan.single_frame_files, plan.mosaic)
        self._on_slices: SlicesReady | None = None

    def read_slice(self, k: int) -> np.ndarray:
        """Slice k (display order) in modality units, decoded alone (for previews)."""
        item = self.plan.slices[k]
        for dtype in (self.dtype, np.dtype(np.float32)):
            out = np.empty(self.plan.shape[1:], dtype=dtype)
            try:
                if not (item.fast and self._try_fast(item, out)):
                    self._store(out, self._decode_one(item.path), item, k)
                return out
            except NeedsFloat:
                continue
        return out

    def _decode_one(self, path: str) -> np.ndarray:
        if self.decode_in_pool and self.plan.layout.compressed:
            try:
                return decode_pool.get_pool(os.cpu_count() or 1).submit(decode_pool.decode_file, path).result()
            except BrokenProcessPool:
                decode_pool.drop_pool()
            except (OSError, RuntimeError):  # no child processes here (daemon, sandbox)
                decode_pool.drop_pool()
        from viewer.io.fastcodecs import j2k_threads

        with j2k_threads(os.cpu_count() or 1):  # one frame decoded alone: all cores on it
            return decode_pool.decode_file(path)

    def _try_fast(self, item: PlannedSlice, out: np.ndarray) -> bool:
        if out.dtype == np.float32:
            # Non-integer rescale (PET, some MR/CT): stored values read into a scratch slice, then one
            # float32 multiply-add into the volume, as the int16 path does in place.
            scratch = np.empty(out.shape, dtype=np.int16)
            if not read_pixels_fast(item.path, scratch, self.plan.layout.explicit, item.offset, item.stamp):
                return False
            stored = fix_stored_bits(scratch.view(np.int16 if self.plan.layout.signed else np.uint16),
                                     self.plan.layout.bits_stored, self.plan.layout.signed)
            rescale_into(out, stored, item.slope, item.intercept)
            return True
        if out.dtype != np.int16 or not (float(item.slope).is_integer() and float(item.intercept).is_integer()):
            return False
        if not read_pixels_fast(item.path, out, self.plan.layout.explicit, item.offset, item.stamp):
            return False
        stored = out.view(np.int16 if self.plan.layout.signed else np.uint16)
        stored = fix_stored_bits(stored, self.plan.layout.bits_stored, self.plan.layout.signed)
        if not self.plan.layout.signed and self.plan.layout.bits_stored <= 15:
            stored = out  # masked values < 2**15 have the same bits as int16: same-type in-place add
        if not self.plan.all_fit and not rescale_fits_int16(item.slope, item.intercept, int(stored.min()),
                                                        int(stored.max())):
            # The stored bit range alone could leave int16 (e.g. signed 16-bit + intercept -1024):
            # this slice's actual values do.
            raise NeedsFloat(0)
        if item.slope != 1 or item.intercept != 0:
            rescale_into(out, stored, item.slope, item.intercept)
        return True

    def _new_volume(self) -> np.ndarray:
        # Zeros when a caller shows the volume while it fills (undecoded slices black, not old memory);
        # np.zeros of this size maps fresh zero pages, as cheap as np.empty.
        return (np.zeros if self._on_slices is not None else np.empty)(self.plan.shape, dtype=self.dtype)

    def _store(self, out: np.ndarray, frames: np.ndarray, item: PlannedSlice, k: int) -> np.ndarray:
        """Write ``item``'s stored values (taken from its file's decoded frames) into ``out``."""
        return store_into(out, frames, item, k, self._spec)

    def read(self, *, progress: Progress | None = None, cancel: CancelCheck | None = None,
             first_slice: FirstSlice | None = None, workers: int | None = None,
             on_slices: SlicesReady | None = None) -> np.ndarray:
        """Every slice of the plan, in modality units, in one new array (z, y, x[, 3]).

        Parameters
        ----------
        progress
            progress(done, total) after each slice.
        cancel
            Polled between slices; True raises :class:`~viewer.io.errors.LoadCancelled`.
        first_slice
            first_slice(k, array) with slice ``plan.first_index`` in modality units, called before any
            other slice is read.
        workers
            Processes for compressed data (default: all cores; the pool part is capped at
            :data:`viewer.io.decode_pool.MAX_WORKERS`); 1 decodes in this process only.
        on_slices
            on_slices(array, ks) after slices ks hold their values in ``array``, the array returned at the
            end (zeros where no slice is stored yet): a viewer may show ready slices while the rest loads
            (slices come from the middle outwards). Called on the calling thread. A read that starts over
            (float32 needed, shared memory full) hands a new array: every slice of an earlier one is then
            void.
        """
        self._on_slices = on_slices
        while True:
            try:
                return self._load(progress, cancel, first_slice, workers)
            except NeedsFloat:
                # A slice's values leave int16: redo in float32 (rare: unsigned 16-bit with large values).
                self.dtype = np.dtype(np.float32)
                first_slice = None
            except SharedFailed:
                self.shared_ok = False

    def _load(self, progress: Progress | None, cancel: CancelCheck | None, first_slice: FirstSlice | None,
              workers: int | None) -> np.ndarray:
        n = len(self.plan.slices)
        done = 0
        # The middle slice first, then outwards (first+1, first-1, ...): what a reader scrolls to first.
        mid = self.plan.first_index
        order = sorted(range(n), key=lambda k: (abs(k - mid), k < mid))
        fast = [k for k in order if self.plan.slices[k].fast]
        slow = [k for k in order if not self.plan.slices[k].fast]
        if not fast:
            # All decoded: _load_slow allocates the volume (in shared memory when the pool fills it).
            arr = self._load_slow(None, slow, progress, cancel, first_slice, workers, done)
            return arr
        vol = self._new_volume()
        if fast and fast[0] == self.plan.first_index:
            # The first slice alone, before anything else, so the caller can draw it at once.
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled")
            if self._try_fast(self.plan.slices[fast[0]], vol[fast[0]]):
                done += 1
                if progress is not None:
                    progress(done, n)
                if self._on_slices is not None:
                    self._on_slices(vol, [fast[0]])
                if first_slice is not None:
                    first_slice(fast[0], vol[fast[0]])
            else:
                slow.insert(0, fast[0])
            fast = fast[1:]
        # Reading (preadv) and the numpy rescale release the GIL: this thread and one helper take
        # chunks from one queue, so both cores read (and fault in the new volume's pages) at once.
        threads = min(2, os.cpu_count() or 1) if (workers is None or workers > 1) else 1
        size = 8
        queue = deque(fast[i:i + size] for i in range(0, len(fast), size))
        finished: list[tuple[list[int], list[int]]] = []  # (chunk, its failed slices); appends are atomic
        errors: list[BaseException] = []
        stop = threading.Event()

        def run(chunk: list[int]) -> None:
            finished.append((chunk, [k for k in chunk if not self._try_fast(self.plan.slices[k], vol[k])]))

        def helper() -> None:
            try:
                while not stop.is_set():
                    try:
                        chunk = queue.popleft()
                    except IndexError:
                        return
                    run(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the calling thread (NeedsFloat)
                errors.append(exc)

        reported = 0

        def account() -> None:
            nonlocal reported, done
            while reported < len(finished):
                chunk, failed = finished[reported]
                reported += 1
                slow.extend(failed)
                done += len(chunk) - len(failed)
                if progress is not None:
                    progress(done, n)
                if self._on_slices is not None:
                    self._on_slices(vol, [k for k in chunk if k not in failed])

        thread = threading.Thread(target=helper, daemon=True) if threads > 1 and len(queue) > 2 else None
        if thread is not None:
            thread.start()
        try:
            while not errors:
                if cancel is not None and cancel():
                    raise LoadCancelled("loading cancelled")
                try:
                    chunk = queue.popleft()
                except IndexError:
                    break
                run(chunk)
                account()
        finally:
            stop.set()
            if thread is not None:
                thread.join()
        if errors:
            raise errors[0]
        account()
        if slow:
            vol = self._load_slow(vol, slow, progress, cancel, first_slice, workers, done)
        return vol


    def _load_slow(self, vol: np.ndarray | None, ks: list[int], progress: Progress | None,
                   cancel: CancelCheck | None, first_slice: FirstSlice | None, workers: int | None,
                   done: int) -> np.ndarray:
        """Decode slices ``ks`` (first slice first) into ``vol`` (allocated here when None), or into a
        new shared-memory volume, returned instead, when decoder processes do all of them (see
        :class:`SharedSlices`)."""
        n = len(self.plan.slices)
        # Group slices by file: a multi-frame or mosaic file is decoded once.
        by_file: dict[str, list[int]] = {}
        for k in ks:
            by_file.setdefault(self.plan.slices[k].path, []).append(k)
        paths = list(by_file)
        ncpu = os.cpu_count() or 1
        workers = ncpu if workers is None else workers
        compressed = self.plan.layout.compressed
        pool_only = self.decode_in_pool and compressed
        use_pool = pool_only or (workers > 1 and compressed and len(paths) >= POOL_MIN_FILES)
        spec = self._spec
        out = vol
        shared: SharedSlices | None = None

        def volume() -> np.ndarray:
            nonlocal out
            if out is None:
                out = self._new_volume()
            return out

        def report(done_ks: list[int], slice_of: Callable[[int], np.ndarray]) -> None:
            nonlocal done
            if self._on_slices is not None:
                self._on_slices(shared.array() if shared is not None else volume(), done_ks)
            for k in done_ks:
                done += 1
                if progress is not None:
                    progress(done, n)
                if k == self.plan.first_index and first_slice is not None:
                    first_slice(k, slice_of(k))

        def put(path: str, frames: np.ndarray) -> None:
            v = volume()
            for k in by_file[path]:
                store_into(v[k], frames, self.plan.slices[k], k, spec)
            report(by_file[path], v.__getitem__)

        def decode_here(chunk: list[str]) -> np.ndarray:
            for path in chunk:
                if cancel is not None and cancel():
                    raise LoadCancelled("loading cancelled")
                put(path, decode_pool.decode_file(path))
            return volume()

        if not use_pool:
            from viewer.io.fastcodecs import j2k_threads

            # One decoding process: OpenJPEG may use every core for each JPEG 2000 frame.
            with j2k_threads(ncpu if workers > 1 else 1):
                return decode_here(paths)
        # Decoded slices travel back through a pipe as pickles at ~0.5 GB/s (measured: ~1 ms per 512x512
        # int16 slice, as long as decoding a JPEG-LS slice takes). With a shared-memory volume the
        # workers write each slice in place (pwrite) and return only when done.
        shared = SharedSlices.create(self.plan.shape, self.dtype) if (
            self.shared_ok and len(ks) == n) else None
        try:
            try:
                pool = decode_pool.get_pool(ncpu if pool_only else workers - 1)
            except Exception:  # noqa: BLE001 - no child processes here (daemon, sandbox): decode locally
                decode_pool.drop_pool()
                return decode_here(paths)
            # A pool kept from an earlier load may already have a worker per core asked for (the app
            # warms one per core): then this process only waits; a third decoder on two cores would
            # slow the others down as much as it adds.
            pool_only = pool_only or decode_pool.pool_size() >= workers
            # The first slice's file is a chunk of its own, so that it is on screen after one decode.
            size = max(1, min(8, len(paths) // (4 * workers)))
            chunks = [paths[:1]] + [paths[i:i + size] for i in range(1, len(paths), size)]
            first, rest = ([], chunks) if pool_only else (chunks[0], chunks[1:])
            if shared is not None:
                return self._pool_shared(pool, shared, first, rest, by_file, spec, pool_only, cancel,
                                         report)
            self._pool_pickled(pool, first, rest, pool_only, cancel, put)
            return volume()
        finally:
            if shared is not None:
                shared.discard()

    def _pool_pickled(self, pool: ProcessPoolExecutor, first: list[str], rest: list[list[str]],
                      pool_only: bool, cancel: CancelCheck | None, put: Callable[[str, np.ndarray], None]) -> None:
        """Decode with the pool, slices sent back pickled and stored here by ``put``."""

        def here(chunk: list[str]) -> list[np.ndarray]:
            return [decode_pool.decode_file(p) for p in chunk]

        def finished(chunk: list[str], results: list[np.ndarray]) -> None:
            for path, frames in zip(chunk, results):
                put(path, frames)

        _steal_work(first, rest, pool_only, cancel, lambda chunk: pool.submit(decode_pool.decode_chunk, chunk),
                    here, finished)

    def _pool_shared(self, pool: ProcessPoolExecutor, shared: SharedSlices, first: list[str],
                     rest: list[list[str]], by_file: dict[str, list[int]], spec: StoreSpec,
                     pool_only: bool, cancel: CancelCheck | None,
                     report: Callable[[list[int], Callable[[int], np.ndarray]], None]) -> np.ndarray:
        """:meth:`_pool_pickled` with every slice written into ``shared`` by whoever decodes it."""
        shape, dtype = self.plan.shape[1:], self.dtype.str

        def jobs(chunk: list[str]) -> list[tuple[str, list[tuple[int, PlannedSlice]]]]:
            return [(p, [(k, self.plan.slices[k]) for k in by_file[p]]) for p in chunk]

        def here(chunk: list[str]) -> None:
            decode_pool.decode_chunk_into(shared.path, shape, dtype, spec, jobs(chunk))

        def finished(chunk: list[str], _: object) -> None:
            report([k for p in chunk for k in by_file[p]], shared.read_slice)

        try:
            _steal_work(first, rest, pool_only, cancel,
                        lambda chunk: pool.submit(decode_pool.decode_chunk_into, shared.path, shape, dtype,
                                                  spec, jobs(chunk)),
                        here, finished)
        except OSError as exc:
            # Writing the shared volume failed (shared memory full): the caller loads again without it.
            raise SharedFailed(str(exc)) from exc
        return shared.finish()


def _steal_work(first: list[str], rest: list[list[str]], pool_only: bool, cancel: CancelCheck | None,
                submit: Callable[[list[str]], Future[Any]], here: Callable[[list[str]], Any],
                finished: Callable[[list[str], Any], None]) -> None:
    """Work stealing between this process and the decoder pool, in chunk order.

    This process decodes ``first`` and then chunks from the front (``here``); the pool gets the same
    chunks from the back (``submit``). A chunk whose future has not started yet is cancelled and decoded
    here. In pool-only mode the pool has all cores, decodes front first, and this process only waits
    (without the GIL). ``finished(chunk, result)`` runs here, in chunk order; a pool that broke (a worker
    killed, or spawn could not start it) is dropped and its chunk decoded here.
    """
    futures: dict[int, Future[Any]] = {}
    try:
        for i in (range(len(rest)) if pool_only else range(len(rest) - 1, -1, -1)):
            futures[i] = submit(rest[i])
        if first:
            finished(first, here(first))
        for i, chunk in enumerate(rest):
            if cancel is not None and cancel():
                raise LoadCancelled("loading cancelled")
            fut = futures[i]
            if not pool_only and fut.cancel():
                result = here(chunk)
            else:
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    decode_pool.drop_pool()
                    result = here(chunk)
            finished(chunk, result)
    finally:
        for fut in futures.values():
            fut.cancel()


