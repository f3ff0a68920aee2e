"""MOSAIC images: one 2D file that tiles all slices of a volume (fMRI, DWI), Siemens and UIH.

Siemens: the tile count is NumberOfImagesInMosaic (0019,100A) or the CSA image header; the slice normal
(its sign says in which order the tiles are stacked) is the CSA SliceNormalVector. ImagePositionPatient of
a mosaic is the corner of the whole mosaic as if it were one image centred on the slice centre, so the
first tile's corner is shifted by half the size difference (the same fix dcm2niix and nibabel apply).
Tiles fill a square grid of ceil(sqrt(count)) per side.

UIH (United Imaging) mosaics carry one item per slice in the private sequence (0065,1050) (the MR
"V-frame" sequence), each with the slice's own ImagePositionPatient; the tile count is the number of
items. Their grid is ceil(sqrt(count)) tiles across and only as many tile rows as needed (not square),
as dcm2niix reads them. Without per-slice positions the Siemens corner rule is used.

A file whose ImageType says MOSAIC but whose tile count cannot be found is not split:
:func:`unsplit_reason` says why, and the loader shows it as one image with that warning.
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
    per_side: int        # tiles per mosaic row (tiles across)
    rows: int            # rows of one tile
    cols: int            # columns of one tile
    normal: np.ndarray   # unit slice normal (LPS), the direction of increasing tile index
    step_mm: float       # distance between slice centres
    tile_rows: int = 0   # tile rows in the mosaic (0: per_side, a square grid)
    positions: np.ndarray | None = None  # (count, 3) per-tile ImagePositionPatient (UIH), else None
    vendor: str = "Siemens"


_UIH_FRAMES = (0x0065, 0x1050)


def is_mosaic(ds: Any) -> bool:
    """True when ImageType names the file a MOSAIC."""
    return "MOSAIC" in [str(v).upper() for v in (ds.get("ImageType") or [])]


def _is_uih(ds: Any) -> bool:
    m = str(ds.get("Manufacturer", "") or "").upper()
    return "UIH" in m or "UNITED IMAGING" in m


def _uih_info(ds: Any) -> MosaicInfo | None:
    """UIH layout from the per-slice private sequence (0065,1050), or None."""
    elem = ds.get(_UIH_FRAMES)
    items = list(elem.value) if elem is not None and elem.VR == "SQ" else []
    if len(items) < 2 or not ds.get("ImageOrientationPatient"):
        return None
    count = len(items)
    across = math.ceil(math.sqrt(count))
    down = math.ceil(count / across)
    rows, cols = int(ds.Rows) // down, int(ds.Columns) // across
    pos: list[list[float]] = []
    for it in items:
        p = it.get("ImagePositionPatient")
        if p is None or len(p) != 3:
            pos = []
            break
        pos.append([float(v) for v in p])
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    positions = np.asarray(pos, dtype=np.float64) if pos else None
    if positions is None and not ds.get("ImagePositionPatient"):
        return None
    step = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    if positions is not None:
        d = positions[-1] - positions[0]
        if np.linalg.norm(d) > 0:
            normal = d / np.linalg.norm(d)  # the direction of increasing tile index
            step = float(np.linalg.norm(d)) / (count - 1)
    normal = normal / np.linalg.norm(normal)
    return MosaicInfo(count, across, rows, cols, normal, step, down, positions, "UIH")


def unsplit_reason(ds: Any) -> str | None:
    """Why a file whose ImageType says MOSAIC is not split into slices; None when it is not a mosaic or
    is split."""
    if not is_mosaic(ds) or mosaic_info(ds) is not None:
        return None
    vendor = str(ds.get("Manufacturer", "") or "unknown vendor")
    if not ds.get("ImageOrientationPatient"):
        why = "it has no ImageOrientationPatient"
    else:
        why = "its number of tiles is not in the file (no Siemens (0019,100A) or CSA header, no UIH (0065,1050))"
    return (f"ImageType says MOSAIC ({vendor}) but the mosaic is not split into slices: {why}; shown as one "
            "image of tiles, without slice positions")


def mosaic_info(ds: Any) -> MosaicInfo | None:
    """Mosaic layout of a Siemens header, or None when ``ds`` is not a mosaic."""
    if not is_mosaic(ds):
        return None
    if _is_uih(ds) or ds.get(_UIH_FRAMES) is not None:
        return _uih_info(ds)
    if not ds.get("ImageOrientationPatient") or not ds.get("ImagePositionPatient"):
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
    if info.positions is not None:
        return np.array(info.positions, dtype=np.float64)
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
    first = (ipp + iop[:3] * col_mm * (int(ds.Columns) - info.cols) / 2
             + iop[3:] * row_mm * (int(ds.Rows) - info.rows) / 2)

    return first + np.outer(np.arange(info.count) * info.step_mm, info.normal)


def split_tiles(image: np.ndarray, info: MosaicInfo) -> np.ndarray:
    """(rows*per_side, cols*per_side) mosaic -> (count, rows, cols) tiles in slice order."""
    n = info.per_side
    m = info.tile_rows or n
    grid = image[: m * info.rows, : n * info.cols].reshape(m, info.rows, n, info.cols)
    return grid.transpose(0, 2, 1, 3).reshape(m * n, info.rows, info.cols)[: info.count]
