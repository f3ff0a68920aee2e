"""Per-volume fields from the standard attributes, the functional groups and the vendors' private tags."""

from __future__ import annotations

import struct

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.core.series_info import VolumeInfo
from viewer.io.volumes import axis_kind, group_volumes, volume_info


def test_siemens_private_b_value_and_direction_read_as_unknown_bytes() -> None:
    ds = Dataset()
    ds.Manufacturer = "SIEMENS"
    ds.add_new((0x0019, 0x100C), "UN", b"1000")
    ds.add_new((0x0019, 0x100E), "UN", struct.pack("<3d", 0.0, -0.6, 0.8))
    info = volume_info(3, ds)
    assert info.index == 3 and info.b_value == 1000.0
    assert info.b_vector == pytest.approx((0.0, -0.6, 0.8))


def test_standard_tags_win_and_ge_b_value_is_taken_modulo() -> None:
    ds = Dataset()
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.add_new((0x0043, 0x1039), "IS", ["1000001000", "8", "0", "0"])
    ds.EchoTime, ds.EchoNumbers, ds.TriggerTime, ds.TemporalPositionIdentifier = 30, 1, 125.5, 7
    info = volume_info(0, ds)
    assert (info.b_value, info.echo_time, info.echo_number, info.trigger_time, info.temporal_position) == (
        1000.0, 30.0, 1, 125.5, 7)
    ds.DiffusionBValue = 500
    assert volume_info(0, ds).b_value == 500.0


def test_enhanced_per_frame_groups() -> None:
    ds = Dataset()
    groups = {
        "MRDiffusionSequence": Dataset(),
        "MREchoSequence": Dataset(),
        "FrameContentSequence": Dataset(),
    }
    groups["MRDiffusionSequence"].DiffusionBValue = 2000
    groups["MRDiffusionSequence"].DiffusionGradientDirectionSequence = Sequence([Dataset()])
    groups["MRDiffusionSequence"].DiffusionGradientDirectionSequence[0].DiffusionGradientOrientation = [1, 0, 0]
    groups["MREchoSequence"].EffectiveEchoTime = 4.92
    groups["FrameContentSequence"].TemporalPositionIndex = 2
    info = volume_info(1, ds, groups.get)
    assert (info.b_value, info.b_vector, info.echo_time, info.temporal_position) == (2000.0, (1.0, 0.0, 0.0), 4.92, 2)


def test_axis_kind_from_what_varies() -> None:
    assert axis_kind([VolumeInfo(0, b_value=0.0), VolumeInfo(1, b_value=1000.0)]) == "diffusion"
    assert axis_kind([VolumeInfo(0, echo_time=2.0), VolumeInfo(1, echo_time=4.0)]) == "echo"
    assert axis_kind([VolumeInfo(0, trigger_time=0.0), VolumeInfo(1, trigger_time=40.0)]) == "phase"
    assert axis_kind([VolumeInfo(0, temporal_position=1), VolumeInfo(1, temporal_position=2)]) == "time"
    assert axis_kind([VolumeInfo(0), VolumeInfo(1)]) == "stack"


def test_group_volumes_deals_each_position_in_key_order() -> None:
    items = [(z, t) for t in (2, 1, 3) for z in (0.0, 5.0, 10.0)]  # (distance, volume key)
    groups, warning = group_volumes(items, lambda it: it[0], lambda it: (it[1],))
    assert warning is None
    assert [[it[1] for it in g] for g in groups] == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    uneven, warning = group_volumes(items[:4], lambda it: it[0], lambda it: (it[1],))
    assert len(uneven) == 1 and warning is not None and "not equally many" in warning
