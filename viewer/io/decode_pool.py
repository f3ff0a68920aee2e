"""The loader's decoder processes: a persistent spawn pool, its entry points and a shared-memory volume.

Compressed pixel data is decoded in other processes because the decoders hold the GIL. The pool is
spawned once and kept for the life of the program (spawn, not fork: safe with Qt and threads). On Linux
the workers write their slices, in modality units, straight into a volume file on tmpfs (/dev/shm,
:class:`SharedSlices`) instead of sending them back pickled; elsewhere :func:`decode_chunk` returns them.

The worker entry points (:func:`import_decoders`, :func:`decode_chunk`, :func:`decode_chunk_into`) are
module-level functions: spawn pickles them by qualified name and the worker imports this module.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from viewer.io.errors import LoadError
from viewer.io.pixels import rescale_fits_int16, rescale_into
from viewer.io.rawread import O_BINARY, read_full_dataset

#: Most decoder processes the pool starts, whatever the core count. Each worker is a Python process
#: that imports numpy, pydicom and the decoders: on a 64-core CI runner or workstation a worker per core
#: would cost more memory and start-up than it saves on a series of a few hundred files. get_pool
#: applies the cap, so every caller (warm_pool, the loader's ``workers``) is bound by it.
MAX_WORKERS = 8


class StoredSlice(Protocol):
    """What :func:`store_into` reads of one slice (:class:`viewer.io.plan.PlannedSlice` is one)."""

    path: str
    frame: int | None   # frame index of a multi-frame file, or tile index of a mosaic
    slope: float
    intercept: float
    lut: Any            # viewer.io.pixels.ModalityLUT, or None


@dataclass
class StoreSpec:
    """What :func:`store_into` needs of the loader (picklable: decoder processes use it)."""

    all_fit: bool          # every slice's rescaled range fits the volume's int16 (no per-slice check)
    single_frame_file: bool  # the first file has one frame (a frame index then means a mosaic tile)
    mosaic: Any = None     # viewer.io.mosaic.MosaicInfo of a Siemens mosaic, else None


def store_into(out: np.ndarray, frames: np.ndarray, item: StoredSlice, k: int,
               spec: StoreSpec) -> np.ndarray:
    """Write ``item``'s values in modality units (taken from its file's decoded ``frames``) into ``out``
    (one slice of the volume); raises :class:`NeedsFloat` when an int16 volume cannot hold them."""
    from viewer.io.mosaic import split_tiles

    if item.frame is None:
        src = frames[0]
    elif spec.single_frame_file and frames.shape[0] == 1:
        info = spec.mosaic
        if info is None:
            raise LoadError(f"{item.path}: tile {item.frame} of a mosaic without mosaic information")
        src = split_tiles(frames[0], info)[item.frame]
    else:
        if item.frame >= frames.shape[0]:
            raise LoadError(f"{item.path}: frame {item.frame + 1} missing: the file decodes to "
                            f"{frames.shape[0]} frame(s)")
        src = frames[item.frame]
    if src.shape[:2] != out.shape[:2]:
        raise LoadError(f"{item.path}: pixel data is {src.shape[:2]}, expected {out.shape[:2]}")
    if out.dtype == np.uint8:
        np.copyto(out, src, casting="unsafe")
        return out
    if item.lut is not None:
        # viewer.io.pixels.ModalityLUT, checked when the header was read (no pydicom data set here).
        np.copyto(out, item.lut.apply(src), casting="unsafe")
        return out
    if out.dtype == np.int16 and not spec.all_fit and not rescale_fits_int16(
            item.slope, item.intercept, int(src.min()), int(src.max())):
        raise NeedsFloat(k)
    rescale_into(out, src, item.slope, item.intercept)
    return out


class NeedsFloat(Exception):
    """Slice k's values do not fit the int16 volume: the loader starts again in float32."""

    def __init__(self, k: int) -> None:
        super().__init__(k)


def decode_file(path: str) -> np.ndarray:
    """The decoded frames of one file (stored values); :class:`LoadError` names a defective file."""
    from viewer.io.decode import decode_frames

    try:
        return decode_frames(read_full_dataset(path), path)
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken file must not crash the viewer
        raise LoadError(f"{path}: pixel data cannot be decoded, the file is defective: "
                        f"{type(exc).__name__}: {exc}") from exc


def import_decoders() -> None:
    """Pool entry point: import pydicom and its pixel decoders (the slow part of a worker's first job)."""
    import pydicom.pixels  # noqa: F401

    import viewer.io.decode  # noqa: F401
    from viewer.io.fastcodecs import available

    available()  # imports imagecodecs


def decode_chunk(paths: list[str]) -> list[np.ndarray]:
    """Process-pool entry point (module level so spawn can import it)."""
    return [decode_file(p) for p in paths]


def decode_chunk_into(target: str, shape: tuple[int, ...], dtype: str, spec: StoreSpec,
                       jobs: Sequence[tuple[str, Sequence[tuple[int, StoredSlice]]]]) -> None:
    """Process-pool entry point: decode each file of ``jobs`` and write its slices (k, item), in
    modality units, at slice k of the shared volume file ``target``."""
    fd = os.open(target, os.O_WRONLY | O_BINARY)
    try:
        out = np.empty(shape, dtype=np.dtype(dtype))
        view = out.data.cast("B")
        for path, slices in jobs:
            frames = decode_file(path)
            for k, item in slices:
                store_into(out, frames, item, k, spec)
                pwrite_all(fd, view, k * out.nbytes)
    finally:
        os.close(fd)


def pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        n = os.pwrite(fd, data, offset)
        if n <= 0:
            raise OSError(f"shared volume: wrote {n} bytes at {offset}")
        data, offset = data[n:], offset + n


class SharedFailed(Exception):
    pass


#: Folder of shared memory (tmpfs) for volumes that decoder processes write into; None: not available
#: (Windows, macOS), compressed slices then come back pickled.
SHM_DIR: str | None = "/dev/shm" if sys.platform.startswith("linux") and os.path.isdir("/dev/shm") else None
SHM_PREFIX = "dicom-viewer-vol-"


class SharedSlices:
    """A volume in a file on tmpfs that decoder processes fill with ``pwrite`` (no pickles back).

    The file is unlinked when the load ends (:meth:`finish` or :meth:`discard`); the returned array
    keeps the memory alive through its mmap, and the memory is freed with the array. Files left by a
    process that died mid-load carry its pid and are removed by the next load.
    """

    def __init__(self, path: str, fd: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.path, self._fd, self.shape, self.dtype = path, fd, shape, dtype
        self.slice_bytes = int(np.prod(shape[1:])) * dtype.itemsize
        self.nbytes = self.slice_bytes * shape[0]
        self._array: np.ndarray | None = None

    @classmethod
    def create(cls, shape: tuple[int, ...], dtype: np.dtype[Any]) -> SharedSlices | None:
        """A new sparse file of the volume's size, or None when tmpfs is missing or short of
        space (a full tmpfs would fail the workers' writes half-way)."""
        if SHM_DIR is None or not hasattr(os, "pwrite"):
            return None
        nbytes = int(np.prod(shape)) * dtype.itemsize
        try:
            sweep_stale(SHM_DIR)
            st = os.statvfs(SHM_DIR)
            if st.f_bavail * st.f_frsize < nbytes + (64 << 20):
                return None
            import tempfile

            fd, path = tempfile.mkstemp(prefix=f"{SHM_PREFIX}{os.getpid()}-", dir=SHM_DIR)
        except OSError:
            return None
        try:
            os.ftruncate(fd, nbytes)
        except OSError:
            os.close(fd)
            os.unlink(path)
            return None
        return cls(path, fd, shape, dtype)

    def read_slice(self, k: int) -> np.ndarray:
        """A copy of slice k (for the first_slice callback, while the volume is still being written)."""
        out = np.empty(self.shape[1:], dtype=self.dtype)
        if os.preadv(self._fd, [out.data.cast("B")], k * self.slice_bytes) != self.slice_bytes:
            raise LoadError(f"shared volume: slice {k} could not be read back")
        return out

    def array(self) -> np.ndarray:
        """The volume as an array on the shared memory (mapped once): the workers' writes show in it
        as they land, and slices nobody wrote yet read as zeros (a sparse tmpfs file)."""
        if self._array is None:
            import mmap

            # MAP_POPULATE maps every page now, in one call: faulting them in one by one later costs more.
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            mm = mmap.mmap(self._fd, self.nbytes, flags=flags)
            self._array = np.frombuffer(mm, dtype=self.dtype).reshape(self.shape)
        return self._array

    def finish(self) -> np.ndarray:
        """:meth:`array`, with the file's name gone after this."""
        arr = self.array()
        self.discard()
        return arr

    def discard(self) -> None:
        """Close and unlink the file (idempotent); an array from :meth:`finish` stays valid."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            try:
                os.unlink(self.path)
            except OSError:
                pass


def sweep_stale(folder: str) -> None:
    """Remove shared volumes of processes that no longer exist (killed mid-load)."""
    for name in os.listdir(folder):
        if not name.startswith(SHM_PREFIX):
            continue
        try:
            pid = int(name[len(SHM_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except (ValueError, OSError):
            continue


_POOL: ProcessPoolExecutor | None = None
# Pools replaced by a bigger one or dropped as broken, shut down without waiting: shutdown_pool joins them.
_RETIRED: list[ProcessPoolExecutor] = []
_POOL_SIZE = 0


def get_pool(size: int) -> ProcessPoolExecutor:
    """A process pool kept for the life of the program (spawn: safe with Qt and threads).

    ``size`` workers, at most :data:`MAX_WORKERS`. A pool at least that big is reused: re-spawning costs
    ~250 ms, far more than an idle extra worker.
    """
    global _POOL, _POOL_SIZE
    size = max(1, min(size, MAX_WORKERS))
    if _POOL is None or _POOL_SIZE < size:
        if _POOL is not None:
            _POOL.shutdown(wait=False, cancel_futures=True)
            _RETIRED.append(_POOL)  # joined by shutdown_pool: no process outlives the command
        import multiprocessing

        from viewer.io.limits import limit_process_memory

        # Each decoder process runs under an address-space cap (decode budget + 2 GiB): a file that makes
        # a codec allocate without bound fails in its worker instead of taking the machine down.
        _POOL = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=limit_process_memory)
        _POOL_SIZE = size
    return _POOL


def pool_size() -> int:
    """Workers of the pool last started (0: none yet)."""
    return _POOL_SIZE


def warm_pool() -> None:
    """Start the decoder pool and import the decoders in it now (an idle app's head start)."""
    try:
        pool = get_pool(os.cpu_count() or 1)
        for fut in [pool.submit(import_decoders) for _ in range(_POOL_SIZE)]:
            fut.result()
    except (BrokenProcessPool, OSError, RuntimeError):
        drop_pool()


def prestart_pool(size: int) -> None:
    """Start ``size`` decoder processes and their imports without waiting for them (the loader calls it
    as soon as it knows a series is compressed, so the spawn overlaps its header pass)."""
    global _PRESTARTED
    import multiprocessing

    if _POOL is not None and _POOL_SIZE >= min(max(1, size), MAX_WORKERS):
        return
    if multiprocessing.current_process().daemon:
        return  # a daemonic process (a cluster worker) may not have children: the loader decodes here
    try:
        pool = get_pool(size)
        _PRESTARTED = [pool.submit(import_decoders) for _ in range(_POOL_SIZE)]
    except Exception:  # noqa: BLE001 - no child processes here (sandbox): load() decodes in this process
        drop_pool()


_PRESTARTED: list[Any] = []  # the import jobs of prestart_pool (kept so that errors are not logged)


def drop_pool() -> None:
    """Forget a broken or unstartable pool without waiting for it; the next get_pool starts a new one."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)
        _RETIRED.append(_POOL)
        _POOL = None


def shutdown_pool() -> None:
    """Stop the decoder processes (called at exit), those of pools replaced or dropped before too."""
    global _POOL
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
        _POOL = None
    while _RETIRED:
        _RETIRED.pop().shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pool)
