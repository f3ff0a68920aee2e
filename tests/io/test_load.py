"""load_series on real series: values, geometry, metadata, progressive delivery, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import pydicom  # noqa: E402 - a hard dependency: missing, these tests fail

from viewer.io import LoadCancelled, LoadError, load_series  # noqa: E402
from viewer.io.load import SeriesLoader  # noqa: E402


def _naive(files):
    """Independent reference: pydicom per file, in InstanceNumber order (these series' InstanceNumbers run
    with position, checked), rescale."""
    dss = [pydicom.dcmread(f) for f in files]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    n = np.cross(iop[:3], iop[3:])
    dss.sort(key=lambda d: int(d.InstanceNumber))
    dist = np.diff([float(np.dot(n, np.array(d.ImagePositionPatient, dtype=float))) for d in dss])
    assert (dist > 0).all() or (dist < 0).all()
    return np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss]), dss


@pytest.mark.parametrize("name", ["pancreas-ct-philips-134", "crc-chest-ct-ge-100"])
def test_uncompressed_ct_equals_naive_pydicom(data_dir, name):
    files = sorted((data_dir / "ct" / name).glob("*.dcm"))
    vol = load_series(data_dir / "ct" / name)
    ref, dss = _naive(files)
    assert vol.array.dtype == np.int16
    assert vol.shape == ref.shape
    np.testing.assert_array_equal(vol.array, ref)
    assert vol.modality == "CT"
    assert vol.metadata["instance_uids"] == [d.SOPInstanceUID for d in dss]
    assert vol.affine[:3, 3] == pytest.approx([float(v) for v in dss[0].ImagePositionPatient])
    assert vol.warnings == []


def test_metadata_and_padding(data_dir):
    vol = load_series(data_dir / "ct" / "crc-chest-ct-ge-100")
    md = vol.metadata
    assert md["padding_value"] == -3024  # PixelPaddingValue 63536 (US of -2000) + intercept -1024
    assert (vol.array == -3024).any()
    assert md["window_center"] == -700 and md["window_width"] == 1500
    assert md["photometric"] == "MONOCHROME2"
    assert md["pixel_spacing_source"] == "PixelSpacing"
    assert md["orientation_known"] is True
    assert md["series_number"] is not None and md["patient_id"] is not None
    assert len(md["instance_uids"]) == vol.shape[0]


def test_slice_step_from_positions_not_thickness(data_dir):
    folder = data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom"
    ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
    assert float(ds.SliceThickness) == 3.0
    vol = load_series(folder)
    assert vol.spacing[2] == pytest.approx(2.0)
    assert vol.array.dtype == np.int16 and vol.shape == (20, 512, 512)


def test_progress_first_slice_and_cancel(data_dir):
    folder = data_dir / "ct" / "pancreas-ct-philips-134"
    files = sorted(folder.glob("*.dcm"))
    loader = SeriesLoader(files)
    seen: list[tuple[int, int]] = []
    first: list[int] = []

    def on_first(k, arr):
        assert not seen or len(seen) == 1  # delivered before any other slice is read
        first.append(k)
        assert arr.shape == (512, 512)

    vol = loader.load(progress=lambda d, t: seen.append((d, t)), first_slice=on_first)
    assert first == [loader.first_index] == [len(files) // 2]
    assert seen[-1] == (len(files), len(files)) and len(seen) >= 3
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    np.testing.assert_array_equal(loader.read_slice(5), vol.array[5])
    calls = []
    with pytest.raises(LoadCancelled):
        loader.load(cancel=lambda: len(calls) > 3 or calls.append(1) is not None and False)


def _z_order(vol):
    return [float(p[2]) for p in vol.slice_positions]


@pytest.mark.parametrize("numbers", ["with_position", "against_position", "shuffled"])
def test_slice_order_follows_position_and_instance_number(data_dir, tmp_path, numbers):
    """Slices sort along the normal whatever the file names; "Im 1" (slice 0) is the lowest
    InstanceNumber when InstanceNumber runs with position, else the cranial end; the affine is exact."""
    src = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:6]
    dss = [pydicom.dcmread(f) for f in src]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))  # caudal -> cranial
    new = {"with_position": [10, 11, 12, 13, 14, 15], "against_position": [15, 14, 13, 12, 11, 10],
           "shuffled": [3, 1, 6, 2, 5, 4]}[numbers]
    for i, ds in enumerate(dss):
        ds.InstanceNumber = new[i]
        ds.save_as(tmp_path / f"z{(i * 7) % 6}.dcm")
    vol = load_series(tmp_path)
    zs = sorted(float(d.ImagePositionPatient[2]) for d in dss)
    expected_z = zs if numbers == "with_position" else zs[::-1]  # shuffled: cranial (highest z) first
    assert _z_order(vol) == pytest.approx(expected_z)
    by_z = {float(d.ImagePositionPatient[2]): d for d in dss}
    assert [s.instance_number for s in vol.info.slices] == [int(by_z[z].InstanceNumber) for z in expected_z]
    ref = np.stack([by_z[z].pixel_array.astype(np.int16) * 1 + int(by_z[z].RescaleIntercept) for z in expected_z])
    np.testing.assert_array_equal(vol.array, ref)
    for k in range(6):  # exact affine in display order
        assert vol.voxel_to_patient(np.array([3.0, 5.0, k])) == pytest.approx(
            np.array(by_z[expected_z[k]].ImagePositionPatient, dtype=float)
            + 3 * np.array(by_z[expected_z[k]].ImageOrientationPatient[:3], dtype=float) * float(dss[0].PixelSpacing[1])
            + 5 * np.array(by_z[expected_z[k]].ImageOrientationPatient[3:], dtype=float) * float(dss[0].PixelSpacing[0]))
    assert vol.regular


def test_missing_slice_warning_names_files(data_dir, tmp_path):
    src = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:8]
    for f in src[:3] + src[4:]:
        shutil.copy(f, tmp_path / f.name)
    vol = load_series(tmp_path)
    assert any("missing" in w for w in vol.warnings), vol.warnings
    names = {f.name for f in (src[2], src[4])} | {f.name for f in (src[3], src[5])}
    assert any(n in " ".join(vol.warnings) for n in names)


def test_tilted_gantry_end_to_end(data_dir, tmp_path):
    src = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:5]
    for f in src:
        ds = pydicom.dcmread(f)
        z = float(ds.ImagePositionPatient[2])
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], float(ds.ImagePositionPatient[1]) + 0.3 * z,
                                   z]
        ds.save_as(tmp_path / f.name)
    vol = load_series(tmp_path)
    assert any("tilt" in w for w in vol.warnings)
    step = vol.affine[:3, 2]
    assert abs(step[1]) == pytest.approx(0.3 * abs(step[2]), rel=1e-6)


def test_monochrome1_recorded_not_inverted():
    from pathlib import Path as P

    f = P(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"
    vol = load_series(f)
    ds = pydicom.dcmread(f)
    assert vol.metadata["photometric"] == "MONOCHROME1"
    from pydicom.pixels import apply_modality_lut

    # Modality transform only: with the VOI/presentation step left to the display, not inverted.
    np.testing.assert_allclose(vol.array[0], apply_modality_lut(ds.pixel_array, ds), rtol=1e-6)
    assert vol.metadata["pixel_spacing_source"] == "ImagerPixelSpacing"
    assert vol.metadata["orientation_known"] is False  # a CR without ImageOrientationPatient
    assert any("ImagerPixelSpacing" in w for w in vol.warnings)
    assert vol.spacing[:2] == pytest.approx((0.1, 0.1))


def test_colour_stays_colour():
    import data_store

    f = Path(data_store.__file__).parent / "data" / "SC_rgb_2frame.dcm"
    vol = load_series(f)
    assert vol.array.shape[-1] == 3 and vol.array.dtype == np.uint8
    assert vol.is_color and vol.shape[0] == 2
    ref = pydicom.dcmread(f).pixel_array
    np.testing.assert_array_equal(vol.array, ref)


def test_bad_inputs_raise_load_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadError, match="no loadable"):
        load_series(tmp_path / "empty")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 128 + b"DICM" + b"\x01\x02" * 50)
    with pytest.raises(LoadError):
        SeriesLoader([junk]).load()


def test_series_selection(data_dir):
    folder = data_dir / "dcm_qa" / "enh" / "In"
    vol = load_series(folder, series=2)  # counted from 1, as every command counts series
    assert vol.shape == (32, 64, 64)
    assert vol.volumes is not None and vol.volumes.count == 2
    with pytest.raises(LoadError, match=r"outside 1\.\.2"):
        load_series(folder, series=99)
    with pytest.raises(LoadError, match="no series"):
        load_series(folder, series="1.2.3.4")


def test_frame_of_reference_recorded(data_dir):
    folder = data_dir / "ct" / "pancreas-ct-philips-134"
    ds = pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)
    vol = load_series(folder)
    assert vol.metadata["frame_of_reference_uid"] == ds.FrameOfReferenceUID != ""
