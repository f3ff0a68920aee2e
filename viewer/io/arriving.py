"""A series whose files are still arriving (a PACS retrieve in progress), as a growing volume.

Each stored file is decoded once, when it arrives (a one-file :class:`~viewer.io.load.SeriesLoader`: the
same header walker, rescale and decoders as a whole load). :meth:`ArrivingSeries.snapshot` puts what has
arrived so far into one volume a viewport can show and scroll:

- when the arrived slices lie on one even grid along their normal (an axial CT whose instances come in
  any order), the volume spans that grid from the first to the last arrived position; slots whose
  instance has not arrived are blank (the lowest value arrived) and ``ready`` is False there. The affine
  is exact for what is shown, so a reader's patient position maps to the same slice in every snapshot;
- otherwise (uneven spacing, several slices at one position) the arrived slices are stacked in order
  with their own positions (``Volume.slice_positions``), exact too, no blanks.

Slices run in the display order the whole load will use (:func:`viewer.io.geometry.display_reversed`).
The final volume is the whole load of the stored files, which replaces the last snapshot in place; when the
arrived slices are exactly the loader's (:meth:`ArrivingSeries.whole`), it is made of them after the
loader's header pass instead of reading every file again.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from viewer.core.series_info import SeriesInfo, SliceInfo
from viewer.core.volume import Volume
from viewer.io.errors import LoadError
from viewer.io.geometry import display_reversed

#: Arrived positions count as one grid when each gap is a whole number of steps within this fraction.
GRID_TOLERANCE = 0.02


@dataclass(frozen=True)
class Arrived:
    """What has arrived, ready to show: ``ready[k]`` says slice k of ``volume`` holds its values."""

    volume: Volume
    ready: np.ndarray  # bool, one per slice
    arrived: int  # instances decoded so far
    total: int  # instances expected (-1: not known yet)


@dataclass
class _Slice:
    path: str
    pixels: np.ndarray  # (y, x) or (y, x, 3), modality units
    position: np.ndarray  # LPS mm of the first voxel centre
    info: SliceInfo
    low: float  # its lowest value (blank slots show the lowest value arrived)
    slot: int = -1  # its index in the buffer when the buffer holds it


class ArrivingSeries:
    """Decode instances of one series as they are stored; :meth:`snapshot` the growing volume.

    ``add`` and ``snapshot`` may run on different threads. ``decode_in_pool``: compressed pixels are
    decoded in the decoder processes (the desktop app: decoders hold the GIL).
    """

    def __init__(self, *, decode_in_pool: bool = False) -> None:
        self.decode_in_pool = decode_in_pool
        self.problems: list[str] = []
        self._slices: dict[str, _Slice] = {}
        self._info: SeriesInfo | None = None
        self._plane: np.ndarray | None = None  # affine[:3, :3] of the first instance
        self._shape: tuple[int, ...] = ()
        self._lock = threading.Lock()
        # The grid's slots live in one buffer, in display order, with room for the series to grow into:
        # a snapshot is a view of it, and only the instances new since the last one are written (a copy of
        # the whole 70 MB of a CT per snapshot halved the retrieve's speed). ``_origin``: the position of
        # buffer slot 0, ``_step``: from one slot to the next (mm, LPS); ``_written``: slots that hold a
        # slice or ``_blank``. The buffer is not filled ahead: a slot gets
        # the blank when a snapshot first shows it empty (filling 70-140 MB of fresh memory at once took
        # 0.1-0.4 s of a 2-core machine's time while the retrieve ran).
        self._buffer: np.ndarray | None = None
        self._origin = np.zeros(3)
        self._step = np.zeros(3)
        self._written = np.zeros(0, dtype=bool)
        self._holds = np.zeros(0, dtype=bool)  # slots that hold a slice
        self._blank = 0.0

    def __len__(self) -> int:
        return len(self._slices)

    def add(self, paths: str | Sequence[str]) -> int:
        """Decode the instances stored at ``paths``; returns how many joined (a file that cannot is named in
        ``problems``). One header pass for a batch: the loader parses its first file in full and reads the
        others' headers at byte level, so batches cost less than one file at a time."""
        from viewer.io.load import SeriesLoader

        batch = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
        batch = [p for p in dict.fromkeys(batch) if p not in self._slices]
        if not batch:
            return 0
        try:
            loader = SeriesLoader(batch, decode_in_pool=self.decode_in_pool)
            slices = loader.series_info().slices
            if sorted(s.file for s in slices) != sorted(batch):
                raise LoadError("a multi-frame instance, or one of another size; it is shown when the series "
                                "is complete")
        except LoadError as exc:
            if len(batch) > 1:
                return sum(self.add(p) for p in batch)  # one at a time: only the one that cannot is left out
            self.problems.append(f"{os.path.basename(batch[0])}: {exc}")
            return 0
        plane = np.array(loader.affine[:3, :3], dtype=np.float64)
        with self._lock:  # one orientation for the batch (the loader's)
            same_plane = self._plane is None or bool(np.allclose(plane[:, :2], self._plane[:, :2], atol=1e-4))
        joined = 0
        for k, one in enumerate(slices):
            try:
                pixels = loader.read_slice(k)
            except LoadError as exc:
                self.problems.append(f"{os.path.basename(one.file)}: {exc}")
                continue
            with self._lock:
                if self._info is None:
                    self._info, self._plane, self._shape = loader.series_info(), plane, pixels.shape
                elif pixels.shape != self._shape or not same_plane:
                    self.problems.append(f"{os.path.basename(one.file)}: another size or orientation than the "
                                         "first instance; it is shown when the series is complete")
                    continue
                position = np.array(one.position if one.position is not None else loader.affine[:3, 3],
                                    dtype=np.float64)
                self._slices[one.file] = _Slice(one.file, pixels, position, one, float(pixels.min()))
                self._place_one(self._slices[one.file])
                joined += 1
        return joined

    def _place_one(self, s: _Slice) -> None:
        """Write a slice into its slot of the buffer now, when it lies on the buffer's grid in a free slot
        (then the snapshot, and the whole volume at the end, have nothing left to copy); else the next
        snapshot places it."""
        buf = self._buffer
        if buf is None or s.pixels.dtype != buf.dtype:
            return
        m = float((s.position - self._origin) @ self._step / max(float(self._step @ self._step), 1e-12))
        k = round(m)
        if abs(m - k) < GRID_TOLERANCE and 0 <= k < len(buf) and not self._holds[k]:
            self._hold(s, k)

    def _hold(self, s: _Slice, k: int) -> None:
        """Slot k of the buffer takes slice s (its one copy from now on)."""
        assert self._buffer is not None
        if s.slot >= 0 and self._holds[s.slot] and s.slot != k:
            self._holds[s.slot] = self._written[s.slot] = False  # placed on another reading of the grid
        self._buffer[k] = s.pixels
        s.pixels, s.slot = self._buffer[k], k
        self._holds[k] = self._written[k] = True

    def snapshot(self, total: int = -1) -> Arrived | None:
        """The volume of what has arrived (None before the first instance); ``total``: instances expected."""
        with self._lock:
            if self._info is None or self._plane is None:
                return None
            slices = list(self._slices.values())
            info, plane = self._info, self._plane
        normal = np.cross(plane[:, 0], plane[:, 1])
        normal /= np.linalg.norm(normal) or 1.0
        slices.sort(key=lambda s: float(s.position @ normal))
        dist = np.array([float(s.position @ normal) for s in slices])
        instances = [s.info.instance_number or 0 for s in slices]
        if display_reversed(dist.tolist(), instances, normal):
            slices.reverse()
            dist = dist[::-1]
        # One slice: its own array, no grid yet (its step is a guess; the second slice sets it).
        slots = _grid_slots(dist, total if total > 0 else 2 * len(slices)) if len(slices) > 1 else None
        dtype = np.result_type(*{s.pixels.dtype for s in slices})
        blank = min(s.low for s in slices)
        first, last = slices[0].position, slices[-1].position
        affine = np.eye(4)
        affine[:3, :2] = plane[:, :2]
        affine[:3, 3] = first
        if slots is None:
            # Stacked in order, each at its own position: exact, no blanks.
            array = np.stack([s.pixels.astype(dtype, copy=False) for s in slices])
            affine[:3, 2] = (last - first) / (len(slices) - 1) if len(slices) > 1 else plane[:, 2]
            ready = np.ones(len(slices), dtype=bool)
            infos = [s.info for s in slices]
            positions: np.ndarray | None = np.array([s.position for s in slices]) if len(slices) > 1 else None
        else:
            n = int(slots[-1]) + 1
            step = (last - first) / (n - 1) if n > 1 else plane[:, 2]
            affine[:3, 2] = step
            start = self._place(slices, slots, first, step, n, dtype, total)
            buffer = self._buffer
            assert buffer is not None
            array = buffer[start:start + n]
            ready = np.zeros(n, dtype=bool)
            infos = [SliceInfo(position=_point(first + k * step)) for k in range(n)]
            for s, k in zip(slices, slots):
                if s.slot != start + k:
                    self._hold(s, start + k)
                ready[k] = True
                infos[k] = s.info
            if blank != self._blank:  # a lower value arrived: the empty slots shown show it
                self._written[:] = self._holds
                self._blank = blank
            empty = np.flatnonzero(~self._written[start:start + n])
            if len(empty):
                array[empty] = blank  # shown with nothing arrived there (first time, or a new blank)
                self._written[start + empty] = True
            positions = None
        volume = Volume(array, affine, info.modality, info.series_uid,
                        dataclasses.replace(info, slices=tuple(infos)), slice_positions=positions)
        return Arrived(volume, ready, len(slices), total)


    def whole(self, loader: Any) -> Volume | None:
        """The whole volume ``loader`` (a :class:`~viewer.io.load.SeriesLoader` of every arrived file, headers
        read) would load, from the slices decoded as they arrived: None unless they are exactly its slices,
        in its order, on one grid, of its dtype (then ``loader.load()`` is the way).

        Each slice was decoded by the same reader and rescale as the loader's; what the loader adds (the
        exact affine, the series description, warnings) comes from its header pass, so the result equals
        ``loader.load()`` without reading every file a second time.
        """
        snap = self.snapshot(len(self._slices))
        if (snap is None or not bool(snap.ready.all()) or snap.volume.slice_positions is not None
                or len(loader.shape) != 3 or loader.volumes != 1 or loader.dtype != snap.volume.array.dtype):
            return None
        order = [s.file for s in loader.series_info().slices]
        if order != [s.file for s in snap.volume.info.slices]:
            return None
        array = snap.volume.array
        if self._buffer is not None and len(self._buffer) != len(array):
            array = array.copy()  # the room left for slices that never came goes
        return loader._volume(array)  # type: ignore[no-any-return]  # noqa: SLF001 - io's own loader

    def _place(self, slices: list[_Slice], slots: np.ndarray, first: np.ndarray, step: np.ndarray, n: int,
               dtype: np.dtype[Any], total: int) -> int:
        """Buffer index of the grid's slot 0 (``first``, ``n`` slots of ``step``); a new buffer, with every
        slice copied over, when the grid is not the buffer's or does not fit in it."""
        buf = self._buffer
        if buf is not None and buf.dtype == dtype and np.allclose(step, self._step, atol=1e-4):
            m = float((first - self._origin) @ step / max(float(step @ step), 1e-12))
            if abs(m - round(m)) < GRID_TOLERANCE and 0 <= round(m) and round(m) + n <= len(buf):
                return int(round(m))
        # Room for the whole series when its size is known (the grid never has more slots), else twice
        # what is there. Slot 0 where the InstanceNumbers say it lies (a series numbered 1..N along or
        # against display order then never needs another buffer), else in the middle of the room.
        room = max(total, n) if total > 0 else 2 * n
        start = (room - n) // 2
        numbers = np.array([s.info.instance_number or 0 for s in slices])
        if numbers.min() > 0:
            along = numbers - slots
            if (along == along[0]).all():
                start = int(numbers[0]) - 1  # numbered 1.. in display order
            elif total > 0 and (numbers + slots == numbers[0]).all():
                start = total - int(numbers[0])  # numbered 1..total against display order
        start = min(max(start, 0), room - n)
        self._buffer = np.empty((room, *self._shape), dtype=dtype)
        self._origin, self._step = first - start * step, step.copy()
        for s in slices:
            s.slot = -1  # every slice is copied over, from where it is now
        self._written = np.zeros(room, dtype=bool)
        self._holds = np.zeros(room, dtype=bool)
        return start


def _point(p: np.ndarray) -> tuple[float, float, float]:
    return float(p[0]), float(p[1]), float(p[2])


def _grid_slots(dist: np.ndarray, most: int) -> np.ndarray | None:
    """Slot index of each distance on one even grid (first at 0), or None when they lie on none.

    ``most``: the grid may not have more slots than the series has instances.
    """
    if len(dist) < 2:
        return np.zeros(len(dist), dtype=np.int64)
    gaps = np.abs(np.diff(dist))
    if float(gaps.min()) < 1e-3:
        return None  # several slices at one position (4D, duplicates)
    # The step is the smallest gap or a whole fraction of it (instances 3 and 5 arrived, 4 not yet).
    for parts in range(1, 9):
        steps = gaps / (float(gaps.min()) / parts)
        if np.allclose(steps, np.round(steps), atol=GRID_TOLERANCE):
            slots = np.concatenate([[0], np.cumsum(np.round(steps))]).astype(np.int64)
            return slots if slots[-1] + 1 <= most else None
    return None
