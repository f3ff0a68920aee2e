"""The in-memory image every layer above ``io`` works with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.series_info import SeriesInfo, VolumeAxis


@dataclass
class Volume:
    """A stack of slices with its geometry.

    Attributes
    ----------
    array
        Voxel values in modality units (HU for CT), shape (z, y, x) for grey images or (z, y, x, 3) for
        colour (RGB). dtype int16 when the values are integers that fit, else float32 (uint8 for colour).
    affine
        4x4 float64, row-major. Maps a voxel index column vector (i=column, j=row, k=slice, 1) to patient
        LPS millimetres. Column 0/1 are the row/column direction cosines times the pixel spacing, column 2
        is the real step between slice centres (sheared for a tilted gantry), column 3 the centre of
        voxel (0, 0, 0).
    modality
        DICOM Modality (CT, MR, CR, ...), "" if absent.
    series_uid
        SeriesInstanceUID ("" when the files carry none).
    info
        The typed description of the series (:class:`~viewer.core.series_info.SeriesInfo`): windows,
        photometric interpretation, per-slice files, instance numbers and positions, UIDs, text.
    warnings
        Human-readable problems found while loading (uneven spacing, tilted gantry, fallbacks).
    slice_positions
        (z, 3) LPS mm of voxel (0, 0, k) of each slice, in array order, as the files give them; None when
        the slices have no position (radiographs). When they leave the affine's straight, even line by
        more than ``IRREGULAR_TOL_MM`` (interleaved, overlapping or unevenly spaced slices) the volume is
        not ``regular``: :meth:`voxel_to_patient` and :meth:`patient_to_voxel` then place each slice at
        its own position (linear between neighbours), never by the affine's mean step, and
        :func:`regular_grid` resamples it onto an even grid for MPR.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""
    series_uid: str = ""
    info: SeriesInfo = field(default_factory=SeriesInfo)
    warnings: list[str] = field(default_factory=list)
    slice_positions: np.ndarray | None = None

    def __post_init__(self) -> None:
        # One modality: the Volume's field and the description's agree (whichever was given wins).
        if self.modality and self.info.modality != self.modality:
            self.info = dataclasses.replace(self.info, modality=self.modality)
        elif not self.modality:
            self.modality = self.info.modality
        if self.series_uid and self.info.series_uid != self.series_uid:
            self.info = dataclasses.replace(self.info, series_uid=self.series_uid)
        elif not self.series_uid:
            self.series_uid = self.info.series_uid
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.array.ndim not in (3, 4):
            raise ValueError(f"array must be (z, y, x) or (z, y, x, 3), got shape {self.array.shape}")
        if self.slice_positions is not None:
            self.slice_positions = np.asarray(self.slice_positions, dtype=np.float64).reshape(-1, 3)
            if len(self.slice_positions) != self.array.shape[0]:
                raise ValueError(f"{len(self.slice_positions)} slice positions for {self.array.shape[0]} slices")

    @property
    def metadata(self) -> dict[str, Any]:
        """Deprecated: a plain-dict copy of :attr:`info` for old readers; read ``info``'s fields instead."""
        return self.info.as_metadata()

    @property
    def volumes(self) -> VolumeAxis | None:
        """The fourth dimension of a 4D series (``info.volumes``): its meaning, every volume's own fields
        and which one ``array`` holds. None for a plain 3D series."""
        return self.info.volumes

    @property
    def shape(self) -> tuple[int, int, int]:
        """(z, y, x) voxel counts."""
        z, y, x = self.array.shape[:3]
        return int(z), int(y), int(x)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(column mm, row mm, slice-centre distance mm): lengths of the affine's first three columns."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[0]), float(norms[1]), float(norms[2])

    @property
    def is_color(self) -> bool:
        return self.array.ndim == 4

    @property
    def regular(self) -> bool:
        """True when every slice lies where the affine puts it (within ``IRREGULAR_TOL_MM``)."""
        # Not cached: callers may replace ``affine`` or ``slice_positions``; this is O(slices).
        return self.slice_positions is None or bool(
            slice_offsets(self.slice_positions, self.affine).max(initial=0.0) <= IRREGULAR_TOL_MM)

    def voxel_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Patient LPS mm of voxel indices ``ijk`` (..., 3) given as (i=column, j=row, k=slice).

        An irregular stack places slice k at its own position (between slices: linear in k).
        """
        ijk = np.asarray(ijk, dtype=np.float64)
        if self.regular:
            return np.asarray(ijk @ self.affine[:3, :3].T + self.affine[:3, 3])
        assert self.slice_positions is not None
        base = _positions_at(self.slice_positions, ijk[..., 2])
        return np.asarray(ijk[..., 0:1] * self.affine[:3, 0] + ijk[..., 1:2] * self.affine[:3, 1] + base)

    def patient_to_voxel(self, lps: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (i, j, k) of patient LPS points (..., 3)."""
        inv = np.linalg.inv(self.affine)
        lps = np.asarray(lps, dtype=np.float64)
        ijk = lps @ inv[:3, :3].T + inv[:3, 3]
        if self.regular:
            return ijk
        assert self.slice_positions is not None
        # k from the distance along the slice normal, between the two slices that bracket it.
        normal = np.cross(self.affine[:3, 0], self.affine[:3, 1])
        normal /= np.linalg.norm(normal)
        dist = self.slice_positions @ normal
        k = _k_at(dist, lps @ normal)
        rest = lps - _positions_at(self.slice_positions, k)
        out = np.empty_like(ijk)
        cols = self.affine[:3, :2]
        out[..., 0] = rest @ cols[:, 0] / float(cols[:, 0] @ cols[:, 0])
        out[..., 1] = rest @ cols[:, 1] / float(cols[:, 1] @ cols[:, 1])
        out[..., 2] = k
        return out


#: A slice further than this (mm) from where the affine puts it makes a volume irregular.
IRREGULAR_TOL_MM = 0.01


def slice_offsets(positions: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Distance (mm) of each slice position from where ``affine`` puts voxel (0, 0, k)."""
    k = np.arange(len(positions), dtype=np.float64)
    expected = affine[:3, 3] + np.outer(k, affine[:3, 2])
    return np.asarray(np.linalg.norm(np.asarray(positions) - expected, axis=1))


def _positions_at(positions: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Positions at continuous slice indices ``k`` (...,): linear between slices, and beyond the ends
    along the end slices' own step."""
    k = np.asarray(k, dtype=np.float64)
    n = len(positions)
    if n == 1:
        return np.broadcast_to(positions[0], k.shape + (3,)).copy()
    lo = np.clip(np.floor(k).astype(np.int64), 0, n - 2)
    frac = (k - lo)[..., None]
    return np.asarray(positions[lo] + frac * (positions[lo + 1] - positions[lo]))


def _k_at(dist: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Continuous slice index at distance ``target`` along the normal, ``dist`` per slice (monotonic in
    either direction; equal neighbours allowed)."""
    target = np.asarray(target, dtype=np.float64)
    n = len(dist)
    if n == 1:
        return np.zeros_like(target)
    sign = 1.0 if dist[-1] >= dist[0] else -1.0
    d = dist * sign
    t = target * sign
    lo = np.clip(np.searchsorted(d, t, side="right") - 1, 0, n - 2)
    gap = d[lo + 1] - d[lo]
    frac = np.where(gap > 1e-9, (t - d[lo]) / np.where(gap > 1e-9, gap, 1.0), 0.0)
    return np.asarray(lo + frac)


def regular_grid(volume: Volume) -> Volume:
    """``volume`` itself when regular; else a copy resampled onto even slices along its normal.

    The new slices are ``median step`` apart and span the first to the last slice; each is the linear
    blend, by distance along the normal, of the two acquired slices around it (overlapping slices at one
    distance: the first). MPR and anything else that needs one affine uses this; the acquired plane
    keeps the stored slices. The copy's warnings say it was resampled.
    """
    if volume.regular or volume.slice_positions is None or volume.shape[0] < 2:
        return volume
    # Kept on the volume (views, measurements and MPR all ask for it), valid while its array, affine and
    # positions are the same objects with the same geometry.
    key = (id(volume.array), volume.affine.tobytes(), volume.slice_positions.tobytes())
    cached = volume.__dict__.get("_regular_grid")
    if cached is not None and cached[0] == key:
        return cached[1]  # type: ignore[no-any-return]
    grid = _resample_even(volume)
    volume.__dict__["_regular_grid"] = (key, grid)
    return grid


def _resample_even(volume: Volume) -> Volume:
    assert volume.slice_positions is not None
    pos = volume.slice_positions
    normal = np.cross(volume.affine[:3, 0], volume.affine[:3, 1])
    normal /= np.linalg.norm(normal)
    dist = pos @ normal
    steps = np.abs(np.diff(np.sort(dist)))
    steps = steps[steps > 1e-3]
    step = float(np.median(steps)) if steps.size else 1.0
    span = float(abs(dist[-1] - dist[0]))
    count = max(1, int(round(span / step)) + 1)
    sign = 1.0 if dist[-1] >= dist[0] else -1.0
    targets = dist[0] + sign * step * np.arange(count)
    k = _k_at(dist, targets)
    lo = np.clip(np.floor(k).astype(np.int64), 0, len(pos) - 2)
    frac = k - lo
    src = volume.array
    out = np.empty((count,) + src.shape[1:], dtype=src.dtype)
    for n in range(count):
        a, b, f = src[lo[n]], src[lo[n] + 1], float(frac[n])
        blend = a if f <= 0 else (b if f >= 1 else a * (1.0 - f) + b * f)
        out[n] = np.rint(blend) if np.issubdtype(src.dtype, np.integer) else blend
    affine = volume.affine.copy()
    new_pos = _positions_at(pos, k)
    affine[:3, 3] = new_pos[0]
    affine[:3, 2] = (new_pos[-1] - new_pos[0]) / (count - 1) if count > 1 else normal * step
    # The per-slice description (files, numbers) belongs to the acquired slices, not to the new ones.
    info = dataclasses.replace(volume.info, slices=())
    return Volume(array=out, affine=affine, modality=volume.modality, series_uid=volume.series_uid,
                  info=info, warnings=volume.warnings + [
                      f"resampled onto {count} even slices {step:.3f} mm apart (the acquired slices are "
                      "not evenly spaced)"], slice_positions=new_pos)
