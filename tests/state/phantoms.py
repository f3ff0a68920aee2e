"""Synthetic volumes of known geometry, shared by the state, core and ui tests."""

from __future__ import annotations

import numpy as np

from viewer.core.series_info import SeriesInfo
from viewer.core.volume import Volume


def affine(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), rotation=None) -> np.ndarray:
    """LPS affine with (col, row, slice) ``spacing`` mm; ``rotation`` a 3x3 whose columns are the axes."""
    a = np.eye(4)
    rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    a[:3, :3] = rot * np.asarray(spacing, dtype=np.float64)[None, :]
    a[:3, 3] = origin
    return a


def ramp_volume(shape=(20, 64, 48), spacing=(0.8, 0.8, 2.5), modality="CT", **info) -> Volume:
    """int16 volume whose value at (k, j, i) is 100*k + j - i (distinct and easy to predict); ``info``:
    SeriesInfo fields."""
    z, y, x = shape
    k, j, i = np.meshgrid(np.arange(z), np.arange(y), np.arange(x), indexing="ij")
    arr = (100 * k + j - i).astype(np.int16)
    fields = {"patient_name": "PHANTOM^RAMP", "study_date": "20240102", "series_description": "ramp"}
    fields.update(info)
    return Volume(arr, affine(spacing), modality=modality, series_uid="1.2.3", info=SeriesInfo(**fields))


def sphere_volume(
    radius_mm: float = 20.0,
    spacing: tuple[float, float, float] = (0.7, 0.7, 3.0),
    extent_mm: float = 64.0,
    rotation=None,
) -> Volume:
    """A 1000-HU ball of ``radius_mm`` in -1000 HU air, centred in a cube of side ``extent_mm``."""
    n = [int(round(extent_mm / s)) for s in spacing]  # voxels along i, j, k
    aff = affine(spacing, rotation=rotation)
    k, j, i = np.meshgrid(np.arange(n[2]), np.arange(n[1]), np.arange(n[0]), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(np.float64)
    centre_ijk = (np.array(n, dtype=np.float64) - 1) / 2
    d = (ijk - centre_ijk) @ aff[:3, :3].T
    inside = np.linalg.norm(d, axis=-1) <= radius_mm
    arr = np.where(inside, 1000, -1000).astype(np.int16)
    return Volume(arr, aff, modality="CT", series_uid="1.2.4", info=SeriesInfo(patient_name="PHANTOM^SPHERE"))
