"""Siemens MOSAIC images: one 2D file that tiles all slices of a volume (fMRI, DWI).

The tile count is NumberOfImagesInMosaic (0019,100A) or the CSA image header; the slice normal (its sign
says in which order the tiles are stacked) is the CSA SliceNormalVector. ImagePositionPatient of a mosaic
is the corner of the whole mosaic as if it were one image centred on the slice centre, so the first tile's
corner is shifted by half the size difference (the same fix dcm2niix and nibabel apply).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class MosaicInfo:
    count: int           # tiles holding slices
    per_side: int        # tiles per mosaic row and column
    rows: int            # rows of one tile
    cols: int            # columns of one tile
    normal: np.ndarray   # unit slice normal (LPS), the direction of increasing tile index
    step_mm: float       # distance between slice centres


def mosaic_info(ds: Any) -> MosaicInfo | None:
    """Mosaic layout of a Siemens header, or None when ``ds`` is not a mosaic."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "MOSAIC" not in image_type:
        return None
    count = ds.get((0x0019, 0x100A))
    normal = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nibabel.nicom import csareader

            csa = csareader.get_csa_header(ds, "image")  # type: ignore[no-untyped-call]
            if csa is not None:
                if count is None:
                    count = csareader.get_n_mosaic(csa)  # type: ignore[no-untyped-call]
                normal = csareader.get_slice_normal(csa)  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - a broken CSA header falls back to the cross product
        csa = None
    if count is None:
        return None
    count = int(count.value if hasattr(count, "value") else count)
    if count <= 1:
        return None
    per_side = math.ceil(math.sqrt(count))
    rows, cols = int(ds.Rows) // per_side, int(ds.Columns) // per_side
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    cross = np.cross(iop[:3], iop[3:])
    if normal is None or not np.all(np.isfinite(normal)) or np.linalg.norm(normal) < 0.5:
        normal = cross
    normal = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    step = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0
    return MosaicInfo(count, per_side, rows, cols, normal, float(step))


def tile_positions(ds: Any, info: MosaicInfo) -> np.ndarray:
    """(count, 3) LPS positions of the first pixel of each tile."""
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    first = (ipp + iop[:3] * col_mm * (int(ds.Columns) - info.cols) / 2
             + iop[3:] * row_mm * (int(ds.Rows) - info.rows) / 2)
    return first + np.outer(np.arange(info.count) * info.step_mm, info.normal)


def split_tiles(image: np.ndarray, info: MosaicInfo) -> np.ndarray:
    """(rows*per_side, cols*per_side) mosaic -> (count, rows, cols) tiles in slice order."""
    n = info.per_side
    grid = image[: n * info.rows, : n * info.cols].reshape(n, info.rows, n, info.cols)
    return grid.transpose(0, 2, 1, 3).reshape(n * n, info.rows, info.cols)[: info.count]
