"""Converting between ROIs in image pixels and points in patient LPS mm (the viewport's measurements).

:mod:`viewer.state.measurements` keeps measurements as LPS mm points drawn on a slice; the annotation
store and the SR export keep (column, row) pixel points on one DICOM image. These functions convert with
the series geometry (``Volume.affine``), so the layers above can save a measurement as an ROI and show a
stored ROI as a measurement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from viewer.annotations.model import MEASUREMENT_KINDS, ImageKey, Roi
from viewer.core.volume import Volume


def slice_keys(volume: Volume) -> list[ImageKey]:
    """The :class:`ImageKey` of each z index of a volume loaded by ``viewer.io.load_series``.

    Uses ``info.study_uid`` and each slice's instance UID and frame (0-based frame index of a multi-frame
    file, None for a single-frame file); ImageKey.frame is the 1-based DICOM frame number.

    Raises
    ------
    ValueError
        When the series description lacks per-slice instance UIDs.
    """
    slices = volume.info.slices
    if len(slices) != volume.shape[0] or not all(s.sop_instance_uid for s in slices):
        raise ValueError(f"the series lists {sum(bool(s.sop_instance_uid) for s in slices)} instance UIDs "
                         f"for {volume.shape[0]} slices")
    return [ImageKey(volume.info.study_uid, volume.series_uid, s.sop_instance_uid,
                     1 if s.frame is None else s.frame + 1) for s in slices]


def roi_from_lps(kind: str, points_lps: Sequence[Sequence[float]], volume: Volume, slice_keys: Sequence[ImageKey],
                 *, tolerance_slices: float = 0.25, **fields: object) -> Roi:
    """An ROI on the axial slice the LPS points lie on.

    Parameters
    ----------
    kind
        A measurement kind ("distance", "angle", "rect", "ellipse") or an ROI kind.
    points_lps
        (x, y, z) LPS mm.
    volume
        The series' geometry (its ``affine``).
    slice_keys
        The ImageKey of each z index of ``volume``.
    fields
        Further :class:`Roi` fields (label_set, label, annotator, ...).

    Raises
    ------
    ValueError
        When the points do not lie on one acquired slice (within ``tolerance_slices``), e.g. a measurement
        drawn in a reformatted (MPR) plane.
    """
    roi_kind = MEASUREMENT_KINDS.get(kind, kind)
    ijk = volume.patient_to_voxel(np.asarray(points_lps, dtype=np.float64).reshape(-1, 3))
    k = float(np.round(ijk[:, 2].mean()))
    if np.abs(ijk[:, 2] - k).max() > tolerance_slices or not 0 <= k < len(slice_keys):
        raise ValueError("the points do not lie on one acquired slice of the series (drawn in a reformatted "
                         "plane?); only in-plane ROIs can be saved against a DICOM image")
    points = tuple((float(i), float(j)) for i, j in ijk[:, :2])
    return Roi(slice_keys[int(k)], roi_kind, points, **fields)  # type: ignore[arg-type]


def roi_to_lps(roi: Roi, volume: Volume, z: int) -> np.ndarray:
    """The ROI's points as (n, 3) LPS mm on slice ``z`` of ``volume``."""
    pts = np.array([[x, y, float(z)] for x, y in roi.points], dtype=np.float64)
    return volume.voxel_to_patient(pts)
