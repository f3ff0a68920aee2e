from __future__ import annotations

import numpy as np
import pytest

from viewer.annotations.model import ImageKey, Roi
from viewer.annotations.roi_geometry import roi_from_lps, roi_to_lps, slice_keys
from viewer.core.series_info import SeriesInfo, SliceInfo
from viewer.core.volume import Volume


def _volume() -> Volume:
    # 0.7 mm columns, 0.8 mm rows, 2.5 mm slices; rows run toward the patient's back (+y LPS).
    affine = np.array([[0.7, 0, 0, -100.0], [0, 0.8, 0, -50.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    return Volume(np.zeros((4, 20, 30), np.int16), affine, "CT", "1.2.3")


KEYS = [ImageKey("1.2", "1.2.3", f"1.2.3.{z}", 1) for z in range(4)]


def test_measurement_points_become_pixel_roi_on_their_slice() -> None:
    v = _volume()
    # A 14 mm distance along x on slice 2 (z = 30 + 2 * 2.5 = 35 mm).
    roi = roi_from_lps("distance", [(-93.0, -42.0, 35.0), (-79.0, -42.0, 35.0)], v, KEYS, label="d")
    assert roi.kind == "line" and roi.key == KEYS[2] and roi.label == "d"
    assert np.allclose(roi.points, ((10.0, 10.0), (30.0, 10.0)))
    assert roi.length_mm((0.7, 0.8)) == pytest.approx(14.0)
    assert np.allclose(roi_to_lps(roi, v, 2), [(-93.0, -42.0, 35.0), (-79.0, -42.0, 35.0)])
    rect = roi_from_lps("rect", [(-100.0, -50.0, 30.0), (-93.0, -42.0, 30.0)], v, KEYS)
    assert rect.kind == "box" and rect.area_mm2((0.7, 0.8)) == pytest.approx(7.0 * 8.0)


def test_points_off_the_acquired_slices_are_refused() -> None:
    with pytest.raises(ValueError, match="do not lie on one acquired slice"):
        roi_from_lps("distance", [(-93.0, -42.0, 30.0), (-93.0, -42.0, 37.5)], _volume(), KEYS)


def test_slice_keys_use_1_based_dicom_frames() -> None:
    v = _volume()
    v.info = SeriesInfo(study_uid="1.2", slices=tuple(SliceInfo(sop_instance_uid="1.2.3.9", frame=f) for f in range(4)))
    keys = slice_keys(v)
    assert [k.frame for k in keys] == [1, 2, 3, 4] and keys[0] == ImageKey("1.2", "1.2.3", "1.2.3.9", 1)
    v.info = SeriesInfo(study_uid="1.2", slices=tuple(SliceInfo(sop_instance_uid=f"1.2.3.{z}") for z in range(4)))
    assert slice_keys(v) == KEYS
    v.info = SeriesInfo(study_uid="1.2")
    with pytest.raises(ValueError, match="lists 0 instance UIDs for 4 slices"):
        slice_keys(v)


def test_roi_angle_and_polygon_area() -> None:
    ang = Roi(KEYS[0], "angle", ((10, 0), (0, 0), (0, 10)))
    assert ang.angle_deg((1.0, 1.0)) == pytest.approx(90.0)
    tri = Roi(KEYS[0], "polygon", ((0, 0), (4, 0), (0, 3)))
    assert tri.area_mm2((0.5, 2.0)) == pytest.approx(0.5 * 2.0 * 6.0)
    with pytest.raises(ValueError, match="a box ROI needs 2 points"):
        Roi(KEYS[0], "box", ((0, 0),))
