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
The final volume is the whole load of the stored files (``load_series``), which replaces the last
snapshot in place; a snapshot's only purpose is to be looked at while the rest arrives.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from dataclasses import dataclass

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
        # The last snapshot's grid (slots, dtype, affine), its array and the files written into it.
        self._grid: tuple[tuple[int, str, bytes], np.ndarray, set[str]] | None = None

    def __len__(self) -> int:
        return len(self._slices)

    def add(self, path: str) -> bool:
        """Decode the instance stored at ``path``; False (and a line in ``problems``) when it cannot join."""
        from viewer.io.load import SeriesLoader

        path = os.fspath(path)
        if path in self._slices:
            return True
        try:
            loader = SeriesLoader([path], decode_in_pool=self.decode_in_pool)
            if loader.shape[0] != 1:
                raise LoadError("a multi-frame instance; it is shown when the series is complete")
            pixels = loader.read_slice(0)
            info = loader.series_info()
        except LoadError as exc:
            self.problems.append(f"{os.path.basename(path)}: {exc}")
            return False
        one = info.slices[0]
        plane = np.array(loader.affine[:3, :3], dtype=np.float64)
        with self._lock:
            if self._info is None:
                self._info, self._plane, self._shape = info, plane, pixels.shape
            elif (pixels.shape != self._shape or self._plane is None
                  or not np.allclose(plane[:, :2], self._plane[:, :2], atol=1e-4)):
                self.problems.append(f"{os.path.basename(path)}: another size or orientation than the first "
                                     "instance; it is shown when the series is complete")
                return False
            position = np.array(one.position if one.position is not None else loader.affine[:3, 3], dtype=np.float64)
            self._slices[path] = _Slice(path, pixels, position, one)
        return True

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
        slots = _grid_slots(dist, total if total > 0 else 2 * len(slices))
        dtype = np.result_type(*{s.pixels.dtype for s in slices})
        blank = min(float(s.pixels.min()) for s in slices)
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
            # The same grid as the last snapshot: its array gets the new slices only (a 134-slice CT is
            # 70 MB; the viewport redraws from it, which shows a slice either before or after it is written).
            grid = (n, dtype.str, affine.tobytes())
            if self._grid is not None and self._grid[0] == grid:
                _, array, written = self._grid
            else:
                array, written = np.full((n, *self._shape), blank, dtype=dtype), set()
                self._grid = (grid, array, written)
            ready = np.zeros(n, dtype=bool)
            infos = [SliceInfo(position=_point(first + k * step)) for k in range(n)]
            for s, k in zip(slices, slots):
                if s.path not in written:
                    array[k] = s.pixels
                    written.add(s.path)
                ready[k] = True
                infos[k] = s.info
            positions = None
        volume = Volume(array, affine, info.modality, info.series_uid,
                        dataclasses.replace(info, slices=tuple(infos)), slice_positions=positions)
        return Arrived(volume, ready, len(slices), total)


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
