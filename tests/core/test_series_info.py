"""The typed series description: what the loader records per series and per slice, read by field."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from viewer.core.series_info import SeriesInfo, SliceInfo, Window, span_windows, windows_from
from viewer.io import load_series
from viewer.state.image import ImageState, opening_window

GRE = Path("dcm_qa") / "sag" / "In" / "2_gre_field_mapping"  # 5 sagittal MR slices, each its own VOI window


def test_span_windows_spans_differing_windows_and_ignores_agreeing_ones() -> None:
    assert span_windows([Window(40, 400), Window(40, 400), None]) is None
    span = span_windows([Window(4, 9), Window(160, 400), Window(150, 380)])
    assert span is not None and (span.center - span.width / 2, span.center + span.width / 2) == (-40.0, 360.0)
    assert span_windows([Window(1, 0), Window(5, -3)]) is None  # unusable widths do not count
    assert windows_from([40, 300], [400, 1500], ["SOFT"]) == (Window(40, 400, "SOFT"), Window(300, 1500, ""))


def test_loader_records_every_slice_in_display_order(data_dir: Path) -> None:
    vol = load_series(data_dir / GRE)
    info = vol.info
    assert len(info.slices) == vol.shape[0] == 5
    for k, s in enumerate(info.slices):
        ds = pydicom.dcmread(s.file, stop_before_pixels=True)
        assert s.instance_number == int(ds.InstanceNumber)
        assert s.sop_instance_uid == ds.SOPInstanceUID
        assert s.position == pytest.approx([float(v) for v in ds.ImagePositionPatient])
        # the position recorded for z index k is where the affine puts voxel (0, 0, k)
        assert vol.voxel_to_patient(np.array([0.0, 0.0, float(k)])) == pytest.approx(s.position, abs=1e-3)
        if s.window is not None:
            assert s.window.pair == (float(ds.WindowCenter), float(ds.WindowWidth))
    first = pydicom.dcmread(info.slices[0].file, stop_before_pixels=True)
    assert info.modality == vol.modality == "MR"
    assert info.series_uid == vol.series_uid == first.SeriesInstanceUID
    assert info.study_uid == first.StudyInstanceUID
    assert info.frame_of_reference_uid == first.FrameOfReferenceUID
    assert info.slice_thickness == pytest.approx(float(first.SliceThickness))
    assert info.series_number == int(first.SeriesNumber)
    assert info.orientation_known is True and info.photometric == "MONOCHROME2"
    # the shown-first slice's window is the one the file gives for the middle slice
    mid = pydicom.dcmread(info.slices[vol.shape[0] // 2].file, stop_before_pixels=True)
    assert info.windows[0].pair == (float(mid.WindowCenter), float(mid.WindowWidth))
    # the deprecated dict is a copy of the fields, nothing more
    assert vol.metadata["instance_uids"] == info.instance_uids


def test_an_edge_slice_window_never_opens_the_series(data_dir: Path, tmp_path: Path) -> None:
    """An MR whose edge slice says W 9 / L 4 opened as a white-out: the loader took the first file's window."""
    files = sorted((data_dir / GRE).glob("*.dcm"))
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    positions = {f.name: float(pydicom.dcmread(f).ImagePositionPatient[0]) for f in files}
    edge = min(positions, key=positions.__getitem__)
    ds = pydicom.dcmread(tmp_path / edge)
    ds.WindowCenter, ds.WindowWidth = 4, 9
    ds.save_as(tmp_path / edge)
    # The edge file first in the list, as a scanner's listing might give it.
    order = [tmp_path / edge] + [tmp_path / f.name for f in files if f.name != edge]
    vol = load_series(order)
    assert vol.info.windows_vary
    center, width = opening_window(vol)
    assert (center, width) != (4.0, 9.0)
    # every slice's own window lies inside the opening one
    for s in vol.info.slices:
        assert s.window is not None
        assert center - width / 2 <= s.window.center - s.window.width / 2
        assert s.window.center + s.window.width / 2 <= center + width / 2
    assert ImageState(vol).width == width


def test_one_shared_window_opens_as_the_file_says(data_dir: Path) -> None:
    vol = load_series(data_dir / "ct" / "crc-chest-ct-ge-100")
    ds = pydicom.dcmread(vol.info.slices[50].file, stop_before_pixels=True)
    assert not vol.info.windows_vary
    assert opening_window(vol) == (float(np.atleast_1d(ds.WindowCenter)[0]), float(np.atleast_1d(ds.WindowWidth)[0]))


def test_no_window_in_the_files_opens_with_the_modality_default() -> None:
    info = SeriesInfo(modality="CT", slices=(SliceInfo(),))
    assert info.series_window() is None
    from tests.state.phantoms import ramp_volume

    assert opening_window(ramp_volume()) == (40.0, 400.0)
