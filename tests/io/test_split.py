"""Series splitting rules on synthetic header records (what Slicer's scalar volume plugin separates)."""

from __future__ import annotations

from viewer.core.records import HeaderRecord
from viewer.io.split import split_series

AXIAL = "1.0\\0.0\\0.0\\0.0\\1.0\\0.0"
SAG = "0.0\\1.0\\0.0\\0.0\\0.0\\-1.0"


def rec(i: int, z: float, **kw: object) -> HeaderRecord:
    base: dict[str, object] = dict(path=f"/d/{i:04d}.dcm", status="image", series_uid="1.2.3", rows=512,
                                   columns=512, orientation=AXIAL, position=f"0.0\\0.0\\{z}",
                                   image_type="ORIGINAL\\PRIMARY\\AXIAL", acquisition_number="1")
    base.update(kw)
    return HeaderRecord(**base)  # type: ignore[arg-type]


def test_plain_volume_is_one_stack_without_reason() -> None:
    parts = split_series([rec(i, 2.5 * i) for i in range(20)])
    assert len(parts) == 1 and len(parts[0].records) == 20 and parts[0].reason is None


def test_per_slice_acquisition_numbers_do_not_split() -> None:
    # Some CT scanners number every slice as its own acquisition; positions never repeat: one volume.
    parts = split_series([rec(i, float(i), acquisition_number=str(i)) for i in range(10)])
    assert len(parts) == 1


def test_orientation_size_and_image_type_split_with_reasons() -> None:
    recs = [rec(i, float(i)) for i in range(10)]
    recs += [rec(100 + i, float(i), orientation=SAG) for i in range(5)]
    recs += [rec(200 + i, float(i), rows=256, columns=256) for i in range(4)]
    recs += [rec(300, 0.0, image_type="ORIGINAL\\PRIMARY\\LOCALIZER")]
    parts = split_series(recs)
    sizes = sorted(len(p.records) for p in parts)
    assert sizes == [1, 4, 5, 10]
    reasons = {len(p.records): p.reason or "" for p in parts}
    assert "orientation" in reasons[5]
    assert "image size" in reasons[4]
    assert "ImageType" in reasons[1] and "LOCALIZER" in reasons[1]


def test_orientation_noise_below_tolerance_does_not_split() -> None:
    tilted = "1.0\\0.0\\0.0\\0.0\\0.99999999\\0.00001"
    parts = split_series([rec(i, float(i), orientation=AXIAL if i % 2 else tilted) for i in range(6)])
    assert len(parts) == 1


def test_repeated_positions_separated_by_echo_number_are_one_4d_stack() -> None:
    recs = [rec(10 * e + i, float(i), echo_number=str(e)) for e in (1, 2) for i in range(8)]
    parts = split_series(recs)
    assert [len(p.records) for p in parts] == [16]
    assert parts[0].volumes == 2 and parts[0].label == "4D: 2 echoes (EchoNumbers)"
    assert parts[0].reason is None  # nothing split off: no mark in the browser


def test_repeated_positions_separated_by_series_number_split() -> None:
    recs = [rec(10 * e + i, float(i), series_number=str(e)) for e in (1, 2) for i in range(8)]
    parts = split_series(recs)
    assert [len(p.records) for p in parts] == [8, 8]
    assert [p.label for p in parts] == ["SeriesNumber 1", "SeriesNumber 2"]


def test_equal_repeats_no_tag_separates_are_4d() -> None:
    parts = split_series([rec(i, float(i % 4)) for i in range(8)])
    assert len(parts) == 1 and parts[0].volumes == 2 and not parts[0].warnings


def test_unequal_repeats_no_tag_separates_give_a_warning() -> None:
    parts = split_series([rec(i, float(min(i, 5))) for i in range(8)])
    assert len(parts) == 1 and parts[0].warnings and "repeat" in parts[0].warnings[0]


def test_multiframe_files_and_images_without_position() -> None:
    recs = [rec(1, 0.0, frames=30), rec(2, 0.0, frames=30), rec(3, 0.0, frames=20)]
    recs += [rec(10 + i, 0.0, position="", orientation="") for i in range(3)]
    parts = split_series(recs)
    # The two 30-frame files are one stack (volumes of one acquisition), the 20-frame file its own.
    assert sorted(len(p.records) for p in parts) == [1, 1, 1, 1, 2]
    joined = next(p for p in parts if len(p.records) == 2)
    assert joined.reason is None and joined.label == "2 x 30 frames"
    assert "multi-frame" in (next(p for p in parts if p.records[0].frames == 20).reason or "")
    assert any("ImagePositionPatient" in (p.reason or "") for p in parts)
    labels = [p.label for p in parts]
    assert len(set(labels)) == len(labels), labels  # siblings never look alike


def test_single_multiframe_file_has_no_reason() -> None:
    parts = split_series([rec(1, 0.0, frames=64)])
    assert len(parts) == 1 and parts[0].reason is None


def test_fmri_time_points_by_temporal_position_are_one_4d_stack() -> None:
    """fMRI numbered by TemporalPositionIdentifier: one stack of 156 volumes, not 156 stacks."""
    recs = [rec(1000 * t + i, 3.0 * i, temporal_position=str(t + 1), acquisition_number="1")
            for t in range(156) for i in range(4)]
    (part,) = split_series(recs)
    assert part.volumes == 156 and part.label == "4D: 156 time points (TemporalPositionIdentifier)"
