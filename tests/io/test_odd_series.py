"""Series real viewers meet at the edges, each built with pydicom from real files in a tmp folder:
one-frame enhanced CT objects, a UIH-style mosaic, a multi-echo series, a nested (Philips CD style)
DICOMDIR, interleaved / overlapping slice positions, and a series split by ImageType."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.core.volume import regular_grid
from viewer.io.load import load_series, stack_loader
from viewer.io.series import find_stacks

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _ct(data_dir: Path, n: int) -> list[Dataset]:
    files = sorted((data_dir / "ct" / "pancreas-ct-philips-134").glob("*.dcm"))[:n]
    dss = [pydicom.dcmread(f) for f in files]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    return dss


def _item(**kw: object) -> Dataset:
    d = Dataset()
    for k, v in kw.items():
        setattr(d, k, v)
    return d


def _save(ds: Dataset, path: Path) -> None:
    ds.file_meta = ds.get("file_meta") or FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


# -- one-frame enhanced CT ------------------------------------------------------------------------------
def _enhanced_one_frame(ds: Dataset) -> Dataset:
    """The same slice as an Enhanced CT object of one frame: geometry and rescale only in the
    functional groups (PS3.3 C.7.6.16), nothing at the top level."""
    e = copy.deepcopy(ds)
    e.SOPClassUID = ENHANCED_CT
    e.NumberOfFrames = 1
    e.SharedFunctionalGroupsSequence = Sequence([_item(
        PixelMeasuresSequence=Sequence([_item(PixelSpacing=ds.PixelSpacing, SliceThickness=ds.SliceThickness)]),
        PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=ds.ImageOrientationPatient)]),
        PixelValueTransformationSequence=Sequence([_item(RescaleSlope=ds.RescaleSlope,
                                                         RescaleIntercept=ds.RescaleIntercept,
                                                         RescaleType="HU")]))])
    e.PerFrameFunctionalGroupsSequence = Sequence([_item(
        PlanePositionSequence=Sequence([_item(ImagePositionPatient=ds.ImagePositionPatient)]))])
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "RescaleSlope",
               "RescaleIntercept"):
        delattr(e, kw)
    return e


def test_one_frame_enhanced_ct_uses_its_per_frame_position(data_dir: Path, tmp_path: Path) -> None:
    dss = _ct(data_dir, 5)
    for i, ds in enumerate(dss):
        (tmp_path / "plain").mkdir(exist_ok=True)
        (tmp_path / "enh").mkdir(exist_ok=True)
        _save(copy.deepcopy(ds), tmp_path / "plain" / f"{i}.dcm")
        _save(_enhanced_one_frame(ds), tmp_path / "enh" / f"{i}.dcm")
    stacks = find_stacks(tmp_path / "enh").stacks
    assert len(stacks) == 1 and len(stacks[0].files) == 5  # one stack, not five one-image stacks
    enh = load_series(tmp_path / "enh")
    plain = load_series(tmp_path / "plain")
    np.testing.assert_array_equal(enh.array, plain.array)
    np.testing.assert_allclose(enh.affine, plain.affine, atol=1e-6)
    # The origin is the own ImagePositionPatient of the first slice shown (lowest InstanceNumber: they
    # run with position here), not (0, 0, 0).
    first = min(dss, key=lambda d: int(d.InstanceNumber))
    np.testing.assert_allclose(enh.affine[:3, 3], np.array(first.ImagePositionPatient, dtype=float))
    np.testing.assert_allclose(enh.slice_positions, plain.slice_positions)
    assert int(enh.array.min()) < -500  # rescale from the functional groups (HU), not stored values


def test_enhanced_frames_of_another_orientation_are_left_out_with_a_warning(data_dir: Path,
                                                                           tmp_path: Path) -> None:
    dss = _ct(data_dir, 5)
    for i, ds in enumerate(dss):
        e = _enhanced_one_frame(ds)
        if i >= 3:  # a sagittal frame in the axial series
            e.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        _save(e, tmp_path / f"{i}.dcm")
    vol = load_series(tmp_path)
    assert vol.shape[0] == 3
    assert any("another orientation" in w and "3.dcm" in w and "4.dcm" in w for w in vol.warnings), vol.warnings


# -- UIH-style mosaic --------------------------------------------------------------------------------
def _uih_mosaic(data_dir: Path, count: int) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """A UIH-style mosaic of the first ``count`` slices of a real Siemens fMRI volume: tiles ceil(sqrt)
    across and only the tile rows needed down, per-slice positions in (0065,1050), no Siemens tags."""
    folder = data_dir / "dcm_qa" / "sag" / "In" / "2_fmri_SagAP"
    vol = load_series(folder)
    src = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0])
    tiles = vol.array[:count]
    rows, cols = tiles.shape[1:]
    across = int(np.ceil(np.sqrt(count)))
    down = int(np.ceil(count / across))
    mosaic = np.zeros((down * rows, across * cols), dtype=np.uint16)
    for t in range(count):
        r, c = divmod(t, across)
        mosaic[r * rows:(r + 1) * rows, c * cols:(c + 1) * cols] = tiles[t]
    ds = Dataset()
    for kw in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "Modality", "SeriesDescription",
               "SeriesNumber", "FrameOfReferenceUID", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
               "EchoTime"):
        setattr(ds, kw, src.get(kw))
    ds.SOPClassUID = src.SOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.Manufacturer = "UIH"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]
    ds.InstanceNumber = 1
    ds.AcquisitionNumber = 1
    ds.Rows, ds.Columns = mosaic.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = mosaic.tobytes()
    pos = vol.slice_positions[:count]
    ds.add_new((0x0065, 0x0010), "LO", "Image Private Header")
    ds.add_new((0x0065, 0x1050), "SQ", Sequence([_item(ImagePositionPatient=[f"{v:.6f}" for v in p]) for p in pos]))
    return ds, tiles, pos


def test_uih_mosaic_is_split_into_its_slices(data_dir: Path, tmp_path: Path) -> None:
    ds, tiles, pos = _uih_mosaic(data_dir, 30)  # 6 tiles across, 5 down: not a square grid
    _save(ds, tmp_path / "uih.dcm")
    vol = load_series(tmp_path / "uih.dcm")
    assert vol.shape == (30, 64, 64)
    assert not any("not split" in w for w in vol.warnings)
    np.testing.assert_array_equal(vol.array, tiles.astype(vol.array.dtype))
    np.testing.assert_allclose(vol.slice_positions, pos, atol=1e-5)
    for k in (0, 17, 29):
        np.testing.assert_allclose(vol.voxel_to_patient(np.array([0.0, 0.0, k])), pos[k], atol=1e-5)


def test_uih_diffusion_mosaics_are_one_4d_stack_with_b_values(data_dir: Path, tmp_path: Path) -> None:
    ds, tiles, _ = _uih_mosaic(data_dir, 30)
    for n, (b, direction) in enumerate([(0, None), (1000, [0.0, 0.6, 0.8])]):
        d = copy.deepcopy(ds)
        d.SOPInstanceUID, d.InstanceNumber, d.AcquisitionNumber = generate_uid(), n + 1, n + 1
        d.DiffusionBValue = b
        if direction is not None:
            d.DiffusionGradientOrientation = direction
        _save(d, tmp_path / f"{n}.dcm")
    (stack,) = find_stacks(tmp_path).stacks
    assert stack.volumes == 2
    loader = stack_loader(stack)
    axis = loader.volume_axis
    assert loader.volumes == 2 and axis is not None and axis.kind == "diffusion"
    assert [v.b_value for v in axis.items] == [0.0, 1000.0]
    assert axis.items[1].b_vector == pytest.approx((0.0, 0.6, 0.8))


def test_mosaic_without_tile_count_says_it_is_not_split(data_dir: Path, tmp_path: Path) -> None:
    ds, _, _ = _uih_mosaic(data_dir, 30)
    del ds[(0x0065, 0x1050)]
    ds.Manufacturer = "SomeVendor"
    ds.ImagePositionPatient = [0, 0, 0]
    _save(ds, tmp_path / "m.dcm")
    vol = load_series(tmp_path / "m.dcm")
    assert vol.shape[0] == 1
    assert any("MOSAIC" in w and "not split" in w for w in vol.warnings), vol.warnings


# -- multi-echo ------------------------------------------------------------------------------------
def test_multi_echo_series_is_one_stack_with_an_echo_axis(data_dir: Path, tmp_path: Path) -> None:
    src = sorted((data_dir / "dcm_qa" / "sag" / "In" / "2_gre_field_mapping").glob("*.dcm"))
    uid = generate_uid()
    for echo, te in ((1, 4.92), (2, 7.38)):
        for i, f in enumerate(src):
            ds = pydicom.dcmread(f)
            ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
            ds.EchoNumbers, ds.EchoTime = echo, te
            ds.InstanceNumber = (echo - 1) * len(src) + i + 1
            if echo == 2:
                ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()
            _save(ds, tmp_path / f"e{echo}_{i}.dcm")
    (stack,) = find_stacks(tmp_path).stacks
    assert stack.volumes == 2 and stack.split_label == "4D: 2 echoes (EchoNumbers)"
    loader = stack_loader(stack)
    v1, v2 = loader.load(volume=0), loader.load(volume=1)
    assert v1.volumes is not None and v1.volumes.kind == "echo"
    assert [v.echo_time for v in v1.volumes.items] == [4.92, 7.38]
    assert [v.echo_number for v in v1.volumes.items] == [1, 2]
    assert v2.volumes is not None and v2.volumes.index == 1
    np.testing.assert_array_equal(v2.array, v1.array // 2)
    np.testing.assert_allclose(v1.affine, v2.affine)
    assert [s.instance_number for s in v1.info.slices] == [1, 2, 3, 4, 5] and [s.instance_number for s in v2.info.slices] == [6, 7, 8, 9, 10]


# -- nested DICOMDIR -------------------------------------------------------------------------------
def _dicomdir(path: Path, refs: list[list[str]], kinds: list[str]) -> None:
    ds = Dataset()
    ds.FileSetID = "CD"
    ds.DirectoryRecordSequence = Sequence([_item(DirectoryRecordType=k, ReferencedFileID=r)
                                           for r, k in zip(refs, kinds)])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_nested_dirfile_dicomdir_gives_its_series_and_stays_in_the_media(data_dir: Path, tmp_path: Path) -> None:
    dss = _ct(data_dir, 4)
    cd = tmp_path / "cd"
    (cd / "DICOM" / "S1").mkdir(parents=True)
    for i, ds in enumerate(dss):
        _save(copy.deepcopy(ds), cd / "DICOM" / "S1" / f"IM_{i}")
    outside = tmp_path / "secret.dcm"
    _save(copy.deepcopy(dss[0]), outside)
    # Philips style: the root DICOMDIR points to a DIRFILE per folder; that one lists the images (File
    # IDs from the media root) and, here, one reference that tries to leave the media folder.
    _dicomdir(cd / "DICOM" / "S1" / "DIRFILE",
              [["DICOM", "S1", f"IM_{i}"] for i in range(4)] + [["..", "..", "secret.dcm"]],
              ["IMAGE"] * 5)
    _dicomdir(cd / "DICOMDIR", [["DICOM", "S1", "DIRFILE"]], ["PRIVATE"])
    res = find_stacks(cd / "DICOMDIR")
    assert [len(s.files) for s in res.stacks] == [4]
    assert all(f.startswith(str(cd)) for s in res.stacks for f in s.files)
    assert any("outside the media folder" in reason for _, reason in res.bad_files)
    assert not any(str(outside) == f for s in res.stacks for f in s.files)


# -- slices that one affine cannot describe ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["interleaved", "overlapping"])
def test_irregular_positions_are_kept_per_slice(data_dir: Path, tmp_path: Path, kind: str) -> None:
    """Two interleaved position sets (steps 1 and 2 mm alternating) or overlapping frames (uneven steps):
    every slice is placed at its own position, never by the mean step; MPR gets an even resampled grid."""
    dss = _ct(data_dir, 7)
    z0 = float(dss[0].ImagePositionPatient[2])
    offsets = [0.0, 1.0, 3.0, 4.0, 6.0, 7.0, 9.0] if kind == "interleaved" else [0.0, 3.0, 4.5, 7.5, 9.0, 12.0, 13.5]
    for i, ds in enumerate(dss):
        ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], z0 + offsets[i]]
        ds.InstanceNumber = i + 1
        _save(ds, tmp_path / f"{i}.dcm")
    vol = load_series(tmp_path)
    assert not vol.regular
    zs = [float(p[2]) for p in vol.slice_positions]
    assert zs == pytest.approx([z0 + o for o in offsets])
    for k in range(7):
        assert vol.voxel_to_patient(np.array([0.0, 0.0, float(k)]))[2] == pytest.approx(z0 + offsets[k])
        assert vol.patient_to_voxel(np.asarray(vol.slice_positions[k]))[2] == pytest.approx(k)
    mid = vol.voxel_to_patient(np.array([10.0, 20.0, 2.5]))
    assert mid[2] == pytest.approx(z0 + (offsets[2] + offsets[3]) / 2)
    assert vol.patient_to_voxel(mid) == pytest.approx([10.0, 20.0, 2.5])
    grid = regular_grid(vol)
    assert grid.regular and grid is not vol
    step = float(np.median(np.diff(offsets)))
    assert grid.spacing[2] == pytest.approx(step)
    # A resampled slice that falls on an acquired one equals it.
    for k in range(grid.shape[0]):
        z = float(grid.voxel_to_patient(np.array([0.0, 0.0, float(k)]))[2]) - z0
        hit = [i for i, o in enumerate(offsets) if abs(o - z) < 1e-6]
        if hit:
            np.testing.assert_array_equal(grid.array[k], vol.array[hit[0]])


# -- split labels ---------------------------------------------------------------------------------
def test_split_by_image_type_gives_distinct_labels(data_dir: Path, tmp_path: Path) -> None:
    dss = _ct(data_dir, 6)
    for i, ds in enumerate(dss):
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if i % 2 else ["DERIVED", "SECONDARY", "AXIAL"]
        _save(ds, tmp_path / f"{i}.dcm")
    stacks = find_stacks(tmp_path).stacks
    assert len(stacks) == 2
    labels = [s.split_label for s in stacks]
    assert len(set(labels)) == 2 and all(lbl and "ImageType" in lbl for lbl in labels), labels
    assert all("ImageType differs" in (s.split_reason or "") for s in stacks)


def test_iter_volumes_yields_each_volume_once(data_dir: Path) -> None:
    from viewer.io import iter_volumes

    folder = data_dir / "dcm_qa" / "sag" / "In" / "2_fmri_SagAP"
    (stack,) = find_stacks(folder).stacks
    vols = list(iter_volumes(stack))
    assert [v.volumes.index for v in vols if v.volumes is not None] == list(range(6))
    assert all(v.volumes is not None and v.volumes.kind == "time" for v in vols)
    for v, vol in enumerate(vols):
        np.testing.assert_array_equal(vol.array, load_series(folder, volume=v).array)
    assert not np.array_equal(vols[0].array, vols[5].array)
