"""The in-memory image every layer above ``io`` works with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from viewer.core.series_info import SeriesInfo


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
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str = ""
    series_uid: str = ""
    info: SeriesInfo = field(default_factory=SeriesInfo)
    warnings: list[str] = field(default_factory=list)

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

    @property
    def metadata(self) -> dict[str, Any]:
        """Deprecated: a plain-dict copy of :attr:`info` for old readers; read ``info``'s fields instead."""
        return self.info.as_metadata()

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

    def voxel_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        """Patient LPS mm of voxel indices ``ijk`` (..., 3) given as (i=column, j=row, k=slice)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return np.asarray(ijk @ self.affine[:3, :3].T + self.affine[:3, 3])

    def patient_to_voxel(self, lps: np.ndarray) -> np.ndarray:
        """Continuous voxel indices (i, j, k) of patient LPS points (..., 3)."""
        inv = np.linalg.inv(self.affine)
        lps = np.asarray(lps, dtype=np.float64)
        return lps @ inv[:3, :3].T + inv[:3, 3]
