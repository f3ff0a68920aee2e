"""SEG and SR exports: re-read with highdicom/pydicom with references intact, and checked by dciodvfy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.annotations.conftest import dciodvfy_errors
from viewer.annotations.deid import Deidentifier
from viewer.annotations.labelsets import Code
from viewer.annotations.model import ImageKey, Roi
from viewer.annotations.seg import SegExportError, Segment, read_seg, write_seg
from viewer.annotations.sr import SrError, read_sr, write_sr

LIVER = Code("SCT", "10200004", "Liver")


def _key(ds) -> ImageKey:  # type: ignore[no-untyped-def]
    return ImageKey(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), 1)


def _masks(n: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((n, 512, 512), bool)
    a[1, 100:150, 200:260] = True
    a[2, 110:140, 210:250] = True
    b = np.zeros_like(a)
    b[4, 300:310, 10:20] = True
    b[2, 0, 0] = True  # overlaps nothing, shares a slice with a
    return a, b


def _assert_valid(path: Path) -> None:
    errors = dciodvfy_errors(path)
    if errors is not None:  # dicom3tools installed: no IOD errors allowed
        assert errors == [], errors


def test_seg_round_trip_references_and_validity(ct_slices: list, tmp_path: Path) -> None:
    a, b = _masks(len(ct_slices))
    out = tmp_path / "seg.dcm"
    write_seg(out, ct_slices, [Segment("liver", a, "#dd8241", LIVER), Segment("blob", b)], creator="Doe^Jane")
    _assert_valid(out)
    ds = pydicom.dcmread(out)
    assert ds.Modality == "SEG" and ds.StudyInstanceUID == ct_slices[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == ct_slices[0].FrameOfReferenceUID
    refs = {r.ReferencedSOPInstanceUID for s in ds.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert refs <= {str(d.SOPInstanceUID) for d in ct_slices} and len(refs) >= 3
    seg_desc = {s.SegmentLabel: s for s in ds.SegmentSequence}
    assert seg_desc["liver"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert seg_desc["liver"].SegmentAlgorithmType == "MANUAL"
    back = read_seg(out, ct_slices)
    assert np.array_equal(back["liver"], a) and np.array_equal(back["blob"], b)


def test_seg_deidentified_still_references_deidentified_images(ct_slices: list, tmp_path: Path) -> None:
    deid = Deidentifier(b"a test secret, not a real one")
    a, _ = _masks(len(ct_slices))
    out = tmp_path / "seg.dcm"
    write_seg(out, ct_slices, [Segment("liver", a, code=LIVER)], deidentifier=deid)
    _assert_valid(out)
    anon_images = [deid.dataset(d) for d in ct_slices]  # the images, de-identified with the same key
    raw = out.read_bytes()
    src = ct_slices[0]
    phi = [str(src.PatientName), str(src.PatientID), str(src.StudyInstanceUID), str(src.SeriesInstanceUID),
           str(src.FrameOfReferenceUID), str(src.StudyDate)] + [str(d.SOPInstanceUID) for d in ct_slices]
    assert [p for p in phi if p.encode() in raw] == []
    ds = pydicom.dcmread(out)
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.PatientName == anon_images[0].PatientName == deid.pseudonym(str(src.PatientID))
    assert ds.StudyInstanceUID == anon_images[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == anon_images[0].FrameOfReferenceUID
    # References resolve against the de-identified images: the masks come back on the same slices.
    back = read_seg(out, anon_images)
    assert np.array_equal(back["liver"], a)


def test_seg_rejects_images_without_uids_and_bad_shapes(data_dir: Path, ct_slices: list, tmp_path: Path) -> None:
    # TotalSegmentator's example series has empty Study/Series/SOP Instance UIDs.
    f = next((data_dir / "ct" / "totalseg-ct-j2k-20" / "example_ct_dicom").iterdir())
    ds = pydicom.dcmread(f, stop_before_pixels=True)
    with pytest.raises(SegExportError, match="1 of 1 source images have no StudyInstanceUID"):
        write_seg(tmp_path / "x.dcm", [ds], [Segment("a", np.ones((1, ds.Rows, ds.Columns), bool))])
    with pytest.raises(SegExportError, match=r"mask 'a' has shape \(2, 512, 512\), the series is \(6, 512, 512\)"):
        write_seg(tmp_path / "x.dcm", ct_slices, [Segment("a", np.ones((2, 512, 512), bool))])
    with pytest.raises(SegExportError, match="every mask is empty"):
        write_seg(tmp_path / "x.dcm", ct_slices, [Segment("a", np.zeros((6, 512, 512), bool))])
    assert not (tmp_path / "x.dcm").exists()


def _rois(ct_slices: list) -> list[Roi]:
    k = [_key(d) for d in ct_slices]
    return [Roi(k[0], "box", ((10, 20), (30, 45)), "Abdominal organs", "liver", "a"),
            Roi(k[1], "line", ((0, 0), (30, 40)), annotator="a"),
            Roi(k[1], "ellipse", ((100, 100), (140, 120)), "Findings", "lesion", "a"),
            Roi(k[2], "polygon", ((1, 1), (5, 1), (5, 9)), "Findings", "lesion", "a"),
            Roi(k[2], "point", ((7.25, 8.5),), "Findings", "marker", "a"),
            Roi(k[3], "angle", ((7, 8), (10, 10), (20, 5)), annotator="a")]


def test_sr_round_trip_measurements_and_validity(ct_slices: list, tmp_path: Path) -> None:
    rois = _rois(ct_slices)
    out = tmp_path / "sr.dcm"
    codes = {("Abdominal organs", "liver"): LIVER}
    write_sr(out, ct_slices, rois, code_of=lambda s, lab: codes.get((s, lab)), observer="Doe^Jane")
    _assert_valid(out)
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    evidence = {r.ReferencedSOPInstanceUID for s in ds.CurrentRequestedProcedureEvidenceSequence
                for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert evidence == {r.key.sop_uid for r in rois}
    back = read_sr(out)
    assert [r.roi_id for r in back] == [r.roi_id for r in rois]
    for a, b in zip(rois, back):
        assert b.key == a.key and b.kind == a.kind and b.label == a.label and b.label_set == a.label_set
        assert np.allclose(b.points, a.points)
        assert b.annotator == "Doe^Jane"  # the person observer name (TID 1003)
    # Measurements written with units, from PixelSpacing (0.703125 mm here).
    import highdicom as hd

    report = hd.sr.srread(out).content
    groups = report.get_planar_roi_measurement_groups()
    sp = float(ct_slices[0].PixelSpacing[0])
    length = [m for m in groups[1].get_measurements() if m.name.meaning == "Length"][0]
    assert length.value == pytest.approx(50 * sp) and length.unit.value == "mm"
    area = [m for m in groups[2].get_measurements() if m.name.meaning == "Area"][0]
    assert area.value == pytest.approx(math.pi * 40 * 20 / 4 * sp * sp) and area.unit.value == "mm2"
    assert groups[0].finding_type.value == "10200004"


def test_sr_deidentified(ct_slices: list, tmp_path: Path) -> None:
    deid = Deidentifier(b"another test secret")
    out = tmp_path / "sr.dcm"
    write_sr(out, ct_slices, _rois(ct_slices), observer="Doe^Jane", deidentifier=deid)
    _assert_valid(out)
    raw = out.read_bytes()
    src = ct_slices[0]
    for p in [str(src.PatientName), str(src.PatientID), str(src.StudyInstanceUID), str(src.SOPInstanceUID),
              str(src.StudyDate), "Doe^Jane"]:
        assert p.encode() not in raw, p
    back = read_sr(out)
    assert {r.key.sop_uid for r in back} <= {str(deid.dataset(d).SOPInstanceUID) for d in ct_slices}


def test_sr_rejects_roi_on_unknown_image(ct_slices: list, tmp_path: Path) -> None:
    stray = Roi(ImageKey("1.2", "1.2.3", "1.2.3.999", 1), "point", ((1, 1),))
    with pytest.raises(SrError, match="lies on image 1.2.3.999, which is not among the source images"):
        write_sr(tmp_path / "sr.dcm", ct_slices, [stray])
    with pytest.raises(SrError, match="no ROIs"):
        write_sr(tmp_path / "sr.dcm", ct_slices, [])
    (tmp_path / "junk.dcm").write_bytes(b"not dicom")
    with pytest.raises(SrError, match="not a readable TID 1500"):
        read_sr(tmp_path / "junk.dcm")


def test_seg_on_enhanced_multiframe_mr(data_dir: Path, tmp_path: Path) -> None:
    """One multi-frame source: the SEG references frames by number (Siemens XA keeps geometry per frame)."""
    src = pydicom.dcmread(data_dir / "dcm_qa" / "enh" / "In" / "Siemens" / "XA10" / "6_1.dcm",
                          stop_before_pixels=True)
    frames = [6, 5, 4, 3, 2, 1]  # z order need not be frame order
    mask = np.zeros((6, 64, 64), bool)
    mask[1, 10:20, 10:30] = True
    mask[5, 0:5, 0:5] = True
    out = tmp_path / "mf.dcm"
    write_seg(out, [src], [Segment("x", mask)], frame_numbers=frames)
    _assert_valid(out)
    ds = pydicom.dcmread(out)
    refs = [int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
            for f in ds.PerFrameFunctionalGroupsSequence]
    assert sorted(refs) == [1, 5]  # empty frames omitted; z 1 -> frame 5, z 5 -> frame 1
    assert np.array_equal(read_seg(out, [src], frames)["x"], mask)
    with pytest.raises(SegExportError, match="needs the frame number of each mask slice"):
        write_seg(out, [src], [Segment("x", mask)])
    with pytest.raises(SegExportError, match="distinct and within 1..6"):
        write_seg(out, [src], [Segment("x", mask)], frame_numbers=[1, 2, 3, 4, 5, 7])


def test_sr_on_a_frame_of_a_multiframe_image(data_dir: Path, tmp_path: Path) -> None:
    src = pydicom.dcmread(data_dir / "dcm_qa" / "enh" / "In" / "Siemens" / "XA10" / "6_1.dcm",
                          stop_before_pixels=True)
    key = ImageKey(str(src.StudyInstanceUID), str(src.SeriesInstanceUID), str(src.SOPInstanceUID), 5)
    out = tmp_path / "sr.dcm"
    write_sr(out, [src], [Roi(key, "line", ((1, 2), (30, 40)), annotator="a")], observer="a")
    _assert_valid(out)
    (back,) = read_sr(out)
    assert back.key == key and np.allclose(back.points, ((1, 2), (30, 40)))
